"""places

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 13:41:49.530230

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("places_missing_since", sa.DateTime(), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy: on SQLite a copy drops and
    # recreates calendar_links, and with foreign keys on that would empty the tables
    # that refer to it.
    op.drop_column("calendar_links", "places_missing_since")
