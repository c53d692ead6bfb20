"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:59:12.365274

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_table(
        "bookable_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_bookable_objects_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookable_objects")),
        sa.UniqueConstraint("organisation_id", "name", name=op.f("uq_bookable_objects_organisation_id_name")),
    )
    with op.batch_alter_table("bookable_objects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bookable_objects_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "booking_statuses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("blocks_object", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_booking_statuses_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_statuses")),
        sa.UniqueConstraint("organisation_id", "name", name=op.f("uq_booking_statuses_organisation_id_name")),
    )
    with op.batch_alter_table("booking_statuses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_booking_statuses_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_customers_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customers_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_customers_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "role = 'support' OR organisation_id IS NOT NULL", name=op.f("ck_users_admin_has_organisation")
        ),
        sa.CheckConstraint("role IN ('support', 'admin')", name=op.f("ck_users_role_known")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_users_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("status_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=False),
        sa.Column("remark", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column(
            "extra", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_bookings_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_bookings_customer_id_customers"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["bookable_objects.id"],
            name=op.f("fk_bookings_object_id_bookable_objects"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_bookings_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["status_id"],
            ["booking_statuses.id"],
            name=op.f("fk_bookings_status_id_booking_statuses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bookings_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_bookings_object_time", ["object_id", "start_at", "end_at"], unique=False)
        batch_op.create_index("ix_bookings_organisation_time", ["organisation_id", "start_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_bookings_status_id"), ["status_id"], unique=False)

    op.create_table(
        "integrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("auth_mode", sa.String(length=20), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=True),
        sa.Column("ires_field", sa.String(length=100), nullable=False),
        sa.Column("allow_booking_update", sa.Boolean(), nullable=False),
        sa.Column("ignore_validation_errors", sa.Boolean(), nullable=False),
        sa.Column("cancel_status_id", sa.Integer(), nullable=True),
        sa.Column("new_booking_status_id", sa.Integer(), nullable=True),
        sa.Column("status_with_customer_id", sa.Integer(), nullable=True),
        sa.Column("teams_meeting", sa.Boolean(), nullable=False),
        sa.Column("add_customer_attendee", sa.Boolean(), nullable=False),
        sa.Column("window_past_days", sa.Integer(), nullable=False),
        sa.Column("window_future_days", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("connection_state", sa.String(length=20), nullable=False),
        sa.Column("connection_error", sa.Text(), nullable=True),
        sa.Column("connected_account", sa.String(length=320), nullable=True),
        sa.Column("connected_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("auth_mode IN ('delegated', 'application')", name=op.f("ck_integrations_auth_mode_known")),
        sa.CheckConstraint(
            "window_past_days >= 0 AND window_future_days >= 1", name=op.f("ck_integrations_window_sane")
        ),
        sa.ForeignKeyConstraint(
            ["cancel_status_id"],
            ["booking_statuses.id"],
            name=op.f("fk_integrations_cancel_status_id_booking_statuses"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["new_booking_status_id"],
            ["booking_statuses.id"],
            name=op.f("fk_integrations_new_booking_status_id_booking_statuses"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["bookable_objects.id"],
            name=op.f("fk_integrations_object_id_bookable_objects"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_integrations_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["status_with_customer_id"],
            ["booking_statuses.id"],
            name=op.f("fk_integrations_status_with_customer_id_booking_statuses"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
    )
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_integrations_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "calendar_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("delta_link", sa.Text(), nullable=True),
        sa.Column("window_start", sa.DateTime(), nullable=True),
        sa.Column("window_end", sa.DateTime(), nullable=True),
        sa.Column("last_sync_at", sa.DateTime(), nullable=True),
        sa.Column("last_sync_status", sa.String(length=20), nullable=False),
        sa.Column("last_sync_error", sa.Text(), nullable=True),
        sa.Column("subscription_id", sa.String(length=200), nullable=True),
        sa.Column("subscription_expires_at", sa.DateTime(), nullable=True),
        sa.Column("subscription_client_state", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_calendar_links_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["bookable_objects.id"],
            name=op.f("fk_calendar_links_object_id_bookable_objects"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_links")),
        sa.UniqueConstraint("integration_id", "mailbox", name=op.f("uq_calendar_links_integration_id_mailbox")),
        sa.UniqueConstraint("subscription_id", name=op.f("uq_calendar_links_subscription_id")),
    )
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_links_integration_id"), ["integration_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_calendar_links_object_id"), ["object_id"], unique=False)

    op.create_table(
        "integration_create_entry_statuses",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("status_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_create_entry_statuses_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["status_id"],
            ["booking_statuses.id"],
            name=op.f("fk_integration_create_entry_statuses_status_id_booking_statuses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "status_id", name=op.f("pk_integration_create_entry_statuses")),
    )
    op.create_table(
        "integration_delete_on_statuses",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("status_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_delete_on_statuses_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["status_id"],
            ["booking_statuses.id"],
            name=op.f("fk_integration_delete_on_statuses_status_id_booking_statuses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "status_id", name=op.f("pk_integration_delete_on_statuses")),
    )
    op.create_table(
        "integration_lock_statuses",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("status_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_lock_statuses_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["status_id"],
            ["booking_statuses.id"],
            name=op.f("fk_integration_lock_statuses_status_id_booking_statuses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "status_id", name=op.f("pk_integration_lock_statuses")),
    )
    op.create_table(
        "oauth_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_oauth_tokens_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_tokens")),
        sa.UniqueConstraint("integration_id", name=op.f("uq_oauth_tokens_integration_id")),
    )
    op.create_table(
        "sync_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.String(length=512), nullable=True),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_sync_log_booking_id_bookings"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sync_log_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["calendar_links.id"], name=op.f("fk_sync_log_link_id_calendar_links"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_sync_log_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_log")),
    )
    with op.batch_alter_table("sync_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_log_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index("ix_sync_log_integration_time", ["integration_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sync_log_link_id"), ["link_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sync_log_organisation_id"), ["organisation_id"], unique=False)


def downgrade():
    with op.batch_alter_table("sync_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_log_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_sync_log_link_id"))
        batch_op.drop_index("ix_sync_log_integration_time")
        batch_op.drop_index(batch_op.f("ix_sync_log_booking_id"))

    op.drop_table("sync_log")
    op.drop_table("oauth_tokens")
    op.drop_table("integration_lock_statuses")
    op.drop_table("integration_delete_on_statuses")
    op.drop_table("integration_create_entry_statuses")
    with op.batch_alter_table("calendar_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_links_object_id"))
        batch_op.drop_index(batch_op.f("ix_calendar_links_integration_id"))

    op.drop_table("calendar_links")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integrations_organisation_id"))

    op.drop_table("integrations")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bookings_status_id"))
        batch_op.drop_index("ix_bookings_organisation_time")
        batch_op.drop_index("ix_bookings_object_time")
        batch_op.drop_index(batch_op.f("ix_bookings_customer_id"))

    op.drop_table("bookings")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_organisation_id"))

    op.drop_table("users")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_customers_email"))

    op.drop_table("customers")
    with op.batch_alter_table("booking_statuses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_booking_statuses_organisation_id"))

    op.drop_table("booking_statuses")
    with op.batch_alter_table("bookable_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bookable_objects_organisation_id"))

    op.drop_table("bookable_objects")
    op.drop_table("organisations")
