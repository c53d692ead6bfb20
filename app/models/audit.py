"""Who changed which setting or room of an integration, and when."""

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.database.column_types import UTCDateTime
from app.extensions import db


class AuditEntry(db.Model):
    """One change made in the portal.

    The user's address is copied, so the entry still says who it was after the account
    is deleted. `detail` names what changed; it never holds a secret's value.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_organisation_time", "organisation_id", "created_at"),
        Index("ix_audit_log_integration_time", "integration_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for changes to support accounts, which belong to no organisation.
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    # Kept when the integration goes: the organisation's log still tells what happened.
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    user_email: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)

    integration = relationship("Integration")
