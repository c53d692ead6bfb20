"""account handovers

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 08:40:00.000000

Signing in as another Microsoft account is a switch the admin confirms: the own calendar
link remembers whose calendar it syncs, and the tokens of an offered or a retiring account
wait in a table of their own.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calendar_links") as batch:
        batch.add_column(sa.Column("account", sa.String(length=320), nullable=True))
    # The own calendar synced the account connected now, or last before a disconnect.
    op.execute(
        "UPDATE calendar_links SET account = "
        "(SELECT connected_account FROM integrations WHERE integrations.id = calendar_links.integration_id) "
        "WHERE mailbox = 'me'"
    )
    op.create_table(
        "account_handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("account", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("purpose IN ('offered', 'retiring')", name=op.f("ck_account_handovers_purpose_known")),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_account_handovers_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_handovers_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_handovers")),
    )
    op.create_index(op.f("ix_account_handovers_integration_id"), "account_handovers", ["integration_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_account_handovers_integration_id"), table_name="account_handovers")
    op.drop_table("account_handovers")
    with op.batch_alter_table("calendar_links") as batch:
        batch.drop_column("account")
