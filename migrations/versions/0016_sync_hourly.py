"""sync hourly rollups

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 14:00:00.000000

Per integration and UTC hour: sync runs that ended ok or failed, change notifications
accepted, bookings created, updated and cancelled by the inbound sync. The status page's
health chart reads these instead of the sync log.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COUNTERS = ("syncs_ok", "syncs_failed", "notifications", "bookings_created", "bookings_updated", "bookings_cancelled")


def upgrade():
    op.create_table(
        "sync_hourly",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        *(sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in COUNTERS),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sync_hourly_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "hour", name=op.f("pk_sync_hourly")),
    )


def downgrade():
    op.drop_table("sync_hourly")
