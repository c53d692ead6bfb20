"""alerts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 13:13:41.573840

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "alert_conditions",
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject", name=op.f("pk_alert_conditions")),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("integration_name", sa.String(length=200), nullable=True),
        sa.Column("mailbox", sa.String(length=320), nullable=True),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("last_notified_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=320), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_incidents_integration_id_integrations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["calendar_links.id"], name=op.f("fk_incidents_link_id_calendar_links"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_incidents_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_integration_id"), ["integration_id"], unique=False)
        batch_op.create_index("ix_incidents_organisation_opened", ["organisation_id", "opened_at"], unique=False)
        batch_op.create_index(
            "uq_incidents_open_kind_subject",
            ["kind", "subject"],
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )

    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_notification_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_poll_change_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alert_webhook_url", sa.String(length=2000), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy: on SQLite a copy drops and
    # recreates the table, and with foreign keys on, dropping organisations would cascade
    # into every table that refers to it.
    op.drop_column("organisations", "alert_webhook_url")
    op.drop_column("calendar_links", "last_poll_change_at")
    op.drop_column("calendar_links", "last_notification_at")
    op.drop_column("calendar_links", "failing_since")
    op.drop_column("calendar_links", "consecutive_failures")

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_incidents_open_kind_subject",
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )
        batch_op.drop_index("ix_incidents_organisation_opened")
        batch_op.drop_index(batch_op.f("ix_incidents_integration_id"))

    op.drop_table("incidents")
    op.drop_table("alert_conditions")
