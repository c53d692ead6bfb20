"""sync state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:07:00.145527

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sync_seen_events",
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["calendar_links.id"],
            name=op.f("fk_sync_seen_events_link_id_calendar_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("link_id", "event_id", name=op.f("pk_sync_seen_events")),
    )
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_full_sync_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.drop_column("last_full_sync_at")

    op.drop_table("sync_seen_events")
