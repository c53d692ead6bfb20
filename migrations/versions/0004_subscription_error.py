"""subscription error

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 12:32:29.559257

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subscription_error", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.drop_column("subscription_error")
