from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.database.column_types import UTCDateTime
from app.extensions import db


class SyncLogEntry(db.Model):
    """One decision of the sync: which event, which booking, what was done and why."""

    __tablename__ = "sync_log"
    __table_args__ = (Index("ix_sync_log_integration_time", "integration_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("calendar_links.id", ondelete="SET NULL"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id", ondelete="SET NULL"), index=True)
    event_id: Mapped[str | None] = mapped_column(String(512))
    direction: Mapped[str] = mapped_column(String(10), default="inbound")
    action: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text, default="")
    is_error: Mapped[bool] = mapped_column(default=False)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)

    booking = relationship("Booking")
    link = relationship("CalendarLink")
