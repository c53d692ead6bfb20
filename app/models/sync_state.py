from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class SyncSeenEvent(db.Model):
    """Event ids returned during a link's current full sync round.

    Recorded only when the round's window holds linked bookings to reconcile. Kept in the
    database rather than in memory so a round over a huge calendar stays flat in memory;
    reconciliation compares linked bookings against it once the round completes, and the
    rows are deleted then and at the start of the next full round.
    """

    __tablename__ = "sync_seen_events"

    link_id: Mapped[int] = mapped_column(ForeignKey("calendar_links.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(512), primary_key=True)
