from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.database.column_types import UTCDateTime
from app.extensions import db


class SyncConflict(db.Model):
    """An Outlook appointment the sync did not book because it overlaps a booking.

    One row per appointment of a calendar: a repeated refusal refreshes it. The row is
    removed as soon as the appointment is booked, deleted or cancelled in Outlook, or
    moved off the clash, so what is listed is what still needs a person.
    """

    __tablename__ = "sync_conflicts"
    __table_args__ = (UniqueConstraint("link_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("calendar_links.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(512))
    # Already reduced to what privacy allows: a private appointment's subject is never stored.
    subject: Mapped[str] = mapped_column(Text, default="")
    start_at = mapped_column(UTCDateTime, nullable=False)
    end_at = mapped_column(UTCDateTime, nullable=False)
    all_day: Mapped[bool] = mapped_column(default=False)
    organiser_name: Mapped[str | None] = mapped_column(String(320))
    organiser_email: Mapped[str | None] = mapped_column(String(320))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id", ondelete="SET NULL"), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    # What the last *Try again* found, when it found the clash still there.
    note: Mapped[str | None] = mapped_column(Text)
    first_seen_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_seen_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    link = relationship("CalendarLink")
    booking = relationship("Booking")
