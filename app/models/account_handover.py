"""Tokens of a Microsoft account held apart from an integration's own.

Two moments need them:

- *offered*: an admin pressed Reconnect and signed in as another account than the one
  whose calendar the integration syncs. The new account's tokens wait here, for the user
  who signed in, until that user switches or keeps the old account.
- *retiring*: after a switch, the old account's tokens stay just long enough for a job to
  delete its subscription, and the events the admin chose to remove, from its calendar.

The tokens are encrypted like the integration's own and never leave the server.
"""

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.database.column_types import EncryptedText, UTCDateTime
from app.extensions import db
from app.models.integration import Integration

HANDOVER_OFFERED = "offered"
HANDOVER_RETIRING = "retiring"


class AccountHandover(db.Model):
    __tablename__ = "account_handovers"
    __table_args__ = (CheckConstraint("purpose IN ('offered', 'retiring')", name="purpose_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))
    # Who signed in (an offer is theirs alone to accept); empty for a retiring account.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(256))
    access_token = mapped_column(EncryptedText, nullable=False)
    refresh_token = mapped_column(EncryptedText)
    scope: Mapped[str] = mapped_column(Text, default="")
    expires_at = mapped_column(UTCDateTime, nullable=False)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    integration: Mapped[Integration] = relationship()
