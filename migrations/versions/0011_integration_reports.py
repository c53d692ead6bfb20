"""integration reports

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:30:00.000000

The latest connection test and room discovery of each integration, which now run as jobs
and leave their result here for the portal to show.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "integration_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("request_number", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("answered_number", sa.Integer(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('connection_test', 'room_discovery')", name=op.f("ck_integration_reports_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_reports_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_reports")),
        sa.UniqueConstraint("integration_id", "kind", name=op.f("uq_integration_reports_integration_id_kind")),
    )


def downgrade():
    op.drop_table("integration_reports")
