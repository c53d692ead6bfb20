"""people management

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 14:00:00.000000

Accounts can be disabled and invited from the portal: a disabled account keeps its row
(the audit log still names it), a set-password link is tied to a nonce that changes when
the link is used or replaced, and the account list shows when each account last signed
in. Support accounts belong to no organisation, so their audit entries have none.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_sign_in_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("link_nonce", sa.String(length=32), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("organisation_id", existing_type=sa.Integer(), nullable=True)


def downgrade():
    # Entries about support accounts have no organisation to keep them under.
    op.execute("DELETE FROM audit_log WHERE organisation_id IS NULL")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("organisation_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("link_nonce")
        batch_op.drop_column("last_sign_in_at")
        batch_op.drop_column("disabled_at")
