"""sync conflicts

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10 10:00:00.000000

Outlook appointments the sync refused because they overlap a booking, kept until they
are booked, deleted or moved, so the status page can list them.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=512), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("organiser_name", sa.String(length=320), nullable=True),
        sa.Column("organiser_email", sa.String(length=320), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_sync_conflicts_booking_id_bookings"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sync_conflicts_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["calendar_links.id"],
            name=op.f("fk_sync_conflicts_link_id_calendar_links"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_sync_conflicts_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflicts")),
        sa.UniqueConstraint("link_id", "event_id", name=op.f("uq_sync_conflicts_link_id_event_id")),
    )
    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_conflicts_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sync_conflicts_integration_id"), ["integration_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sync_conflicts_organisation_id"), ["organisation_id"], unique=False)


def downgrade():
    op.drop_table("sync_conflicts")
