from sqlalchemy import JSON, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import utcnow
from app.database.column_types import UTCDateTime
from app.extensions import db


class OutboundEvent(db.Model):
    """What this product last wrote to Outlook for one booking of one delegated integration.

    The snapshot lets an update send only what changed; the generation makes the
    transactionId of a create stable across retries yet new after the event was deleted.
    """

    __tablename__ = "outbound_events"

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    snapshot: Mapped[dict | None] = mapped_column(JSON)
    generation: Mapped[int] = mapped_column(default=0)
    join_url: Mapped[str | None] = mapped_column(Text)
    # The booking's object when its event was last written: a booking still on it stays in
    # the calendar even after the calendar's own object changed; one moved elsewhere leaves.
    object_id: Mapped[int | None] = mapped_column(ForeignKey("bookable_objects.id", ondelete="SET NULL"))
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
