"""An Outlook integration: one Azure app registration in one tenant, and its tokens."""

from sqlalchemy import CheckConstraint, Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.database.column_types import EncryptedText, UTCDateTime
from app.extensions import db
from app.models.booking import BookableObject, BookingStatus
from app.models.organisation import Organisation

AUTH_DELEGATED = "delegated"
AUTH_APPLICATION = "application"
AUTH_MODES = (AUTH_DELEGATED, AUTH_APPLICATION)

CONNECTION_NOT_CONNECTED = "not_connected"
CONNECTION_CONNECTED = "connected"
CONNECTION_NEEDS_RECONNECT = "needs_reconnect"

DEFAULT_IRES_FIELD = "outlook_event_id"


def _status_set_table(name):
    return Table(
        name,
        db.metadata,
        Column("integration_id", ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True),
        Column("status_id", ForeignKey("booking_statuses.id", ondelete="CASCADE"), primary_key=True),
    )


integration_lock_statuses = _status_set_table("integration_lock_statuses")
integration_create_entry_statuses = _status_set_table("integration_create_entry_statuses")
integration_delete_on_statuses = _status_set_table("integration_delete_on_statuses")


class Integration(db.Model):
    __tablename__ = "integrations"
    __table_args__ = (
        CheckConstraint("auth_mode IN ('delegated', 'application')", name="auth_mode_known"),
        CheckConstraint("window_past_days >= 0 AND window_future_days >= 1", name="window_sane"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    auth_mode: Mapped[str] = mapped_column(String(20), default=AUTH_DELEGATED)
    tenant_id: Mapped[str] = mapped_column(String(100), default="")
    client_id: Mapped[str] = mapped_column(String(100), default="")
    client_secret = mapped_column(EncryptedText)

    ires_field: Mapped[str] = mapped_column(String(100), default=DEFAULT_IRES_FIELD)
    allow_booking_update: Mapped[bool] = mapped_column(default=True)
    ignore_validation_errors: Mapped[bool] = mapped_column(default=False)
    cancel_status_id: Mapped[int | None] = mapped_column(ForeignKey("booking_statuses.id", ondelete="SET NULL"))
    new_booking_status_id: Mapped[int | None] = mapped_column(ForeignKey("booking_statuses.id", ondelete="SET NULL"))
    status_with_customer_id: Mapped[int | None] = mapped_column(ForeignKey("booking_statuses.id", ondelete="SET NULL"))
    teams_meeting: Mapped[bool] = mapped_column(default=False)
    add_customer_attendee: Mapped[bool] = mapped_column(default=False)
    window_past_days: Mapped[int] = mapped_column(default=90)
    window_future_days: Mapped[int] = mapped_column(default=365)
    # Delegated mode syncs one calendar into this object; application mode maps rooms instead.
    object_id: Mapped[int | None] = mapped_column(ForeignKey("bookable_objects.id", ondelete="SET NULL"))

    connection_state: Mapped[str] = mapped_column(String(20), default=CONNECTION_NOT_CONNECTED)
    connection_error: Mapped[str | None] = mapped_column(Text)
    connected_account: Mapped[str | None] = mapped_column(String(320))
    connected_name: Mapped[str | None] = mapped_column(String(200))

    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)

    organisation: Mapped[Organisation] = relationship()
    object: Mapped[BookableObject | None] = relationship()
    cancel_status: Mapped[BookingStatus | None] = relationship(foreign_keys=[cancel_status_id])
    new_booking_status: Mapped[BookingStatus | None] = relationship(foreign_keys=[new_booking_status_id])
    status_with_customer: Mapped[BookingStatus | None] = relationship(foreign_keys=[status_with_customer_id])
    lock_statuses: Mapped[list[BookingStatus]] = relationship(secondary=integration_lock_statuses)
    create_calendar_entry_statuses: Mapped[list[BookingStatus]] = relationship(
        secondary=integration_create_entry_statuses
    )
    delete_on_statuses: Mapped[list[BookingStatus]] = relationship(secondary=integration_delete_on_statuses)
    token: Mapped["OAuthToken | None"] = relationship(back_populates="integration", cascade="all, delete-orphan")

    @property
    def is_delegated(self):
        return self.auth_mode == AUTH_DELEGATED

    @property
    def has_client_secret(self):
        return bool(self.client_secret)


class OAuthToken(db.Model):
    """The delegated user's tokens; application mode keeps its short-lived token in memory only."""

    __tablename__ = "oauth_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), unique=True)
    access_token = mapped_column(EncryptedText, nullable=False)
    refresh_token = mapped_column(EncryptedText)
    scope: Mapped[str] = mapped_column(Text, default="")
    expires_at = mapped_column(UTCDateTime, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)

    integration: Mapped[Integration] = relationship(back_populates="token")
