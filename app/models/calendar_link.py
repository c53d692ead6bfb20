from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.database.column_types import EncryptedText, UTCDateTime
from app.extensions import db
from app.models.booking import BookableObject
from app.models.integration import Integration

MAILBOX_ME = "me"

SYNC_NEVER = "never"
SYNC_OK = "ok"
SYNC_ERROR = "error"


class CalendarLink(db.Model):
    """One synced calendar: the delegated user's own (`me`) or one room mailbox (its UPN)."""

    __tablename__ = "calendar_links"
    __table_args__ = (UniqueConstraint("integration_id", "mailbox"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    # `me`, or a room UPN stored lower-case so the uniqueness check ignores case as Exchange does.
    mailbox: Mapped[str] = mapped_column(String(320))
    object_id: Mapped[int] = mapped_column(ForeignKey("bookable_objects.id", ondelete="RESTRICT"), index=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    # The Microsoft account whose calendar `me` is: the sync state and the linked bookings
    # belong to it, so signing in as another account is a switch, not a reconnect.
    account: Mapped[str | None] = mapped_column(String(320))

    # The URL Graph gave at the end of the last complete round; the next round replays it.
    delta_link: Mapped[str | None] = mapped_column(Text)
    # The window the delta round was started with: Graph encodes it in its tokens.
    window_start = mapped_column(UTCDateTime)
    window_end = mapped_column(UTCDateTime)
    last_sync_at = mapped_column(UTCDateTime)
    last_full_sync_at = mapped_column(UTCDateTime)
    last_sync_status: Mapped[str] = mapped_column(String(20), default=SYNC_NEVER)
    last_sync_error: Mapped[str | None] = mapped_column(Text)
    # Failed syncs since the last good one, and when the first of them happened (alert rules).
    consecutive_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    failing_since = mapped_column(UTCDateTime)
    # When Graph last delivered a change notification for this calendar, and when a sync
    # started by polling last found changes: together they show a broken notification path.
    last_notification_at = mapped_column(UTCDateTime)
    last_poll_change_at = mapped_column(UTCDateTime)

    subscription_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    subscription_expires_at = mapped_column(UTCDateTime)
    subscription_client_state = mapped_column(EncryptedText)
    # Why the subscription could not be created or renewed; polling keeps the link synced meanwhile.
    subscription_error: Mapped[str | None] = mapped_column(Text)

    # Set when a complete listing of the tenant's rooms (Graph Places) lacked this mailbox,
    # to the first such listing; cleared when a later one has it again. A flag, never a removal.
    places_missing_since = mapped_column(UTCDateTime)

    # A full round's progress, written with each page it commits so the status page tells the
    # truth while it runs: set when the round starts, cleared when it ends or fails.
    full_sync_started_at = mapped_column(UTCDateTime)
    full_sync_pages: Mapped[int] = mapped_column(server_default="0")
    full_sync_appointments: Mapped[int] = mapped_column(server_default="0")
    full_sync_last_page_at = mapped_column(UTCDateTime)
    full_sync_finished_at = mapped_column(UTCDateTime)

    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    integration: Mapped[Integration] = relationship()
    object: Mapped[BookableObject] = relationship()

    @property
    def is_me(self):
        return self.mailbox == MAILBOX_ME

    @property
    def label(self):
        """How the portal names this calendar: its room mailbox, or the delegated account's own calendar."""
        return "the own calendar" if self.is_me else self.mailbox
