"""history time indexes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 06:40:00.000000

The nightly prune deletes sync-log and audit-log rows older than their retention, across
all organisations: an index on the time alone lets it find them without reading the rows
it keeps.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_sync_log_created_at", "sync_log", ["created_at"], unique=False)
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"], unique=False)


def downgrade():
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    op.drop_index("ix_sync_log_created_at", table_name="sync_log")
