"""full sync progress

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10 10:00:00.000000

A full sync started from the portal can take minutes on a large room. Its progress
(pages read, appointments seen, when the last page came) is kept on the calendar link,
written in each page's own transaction, so the status page shows what really happened.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("full_sync_started_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("full_sync_pages", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("full_sync_appointments", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("full_sync_last_page_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("full_sync_finished_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.drop_column("full_sync_finished_at")
        batch_op.drop_column("full_sync_last_page_at")
        batch_op.drop_column("full_sync_appointments")
        batch_op.drop_column("full_sync_pages")
        batch_op.drop_column("full_sync_started_at")
