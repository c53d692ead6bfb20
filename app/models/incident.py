"""Incidents: alerts that stay open while their condition lasts, and what the evaluator remembers."""

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database.column_types import UTCDateTime
from app.extensions import db

SEVERITY_CRITICAL = "critical"
SEVERITY_WARNING = "warning"

#: The subject of incidents about the installation as a whole (scheduler, queue): support only.
SUBJECT_INSTALLATION = "installation"

_OPEN = text("resolved_at IS NULL")


class Incident(db.Model):
    """One alert from the moment its condition was seen until it cleared.

    `subject` names what the incident is about (``integration:3``, ``link:12`` or
    ``installation``); the database keeps at most one open incident per (kind, subject),
    so two evaluators running at once cannot open the same one twice. Incidents without
    an organisation concern the installation and are shown to support only.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        Index(
            "uq_incidents_open_kind_subject",
            "kind",
            "subject",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
        Index("ix_incidents_organisation_opened", "organisation_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    # Kept when the integration or calendar is removed: the history still says what happened.
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id", ondelete="SET NULL"), index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("calendar_links.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    # Names shown in the history after the integration or calendar itself is gone.
    integration_name: Mapped[str | None] = mapped_column(String(200))
    mailbox: Mapped[str | None] = mapped_column(String(320))
    opened_at = mapped_column(UTCDateTime, nullable=False)
    last_notified_at = mapped_column(UTCDateTime)
    acknowledged_at = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(320))
    resolved_at = mapped_column(UTCDateTime)

    organisation = relationship("Organisation")
    integration = relationship("Integration")
    link = relationship("CalendarLink")

    @property
    def is_open(self):
        return self.resolved_at is None

    @property
    def is_acknowledged(self):
        return self.acknowledged_at is not None

    @property
    def state(self):
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acknowledged_at is not None else "open"

    def __repr__(self):
        return f"<Incident {self.id} {self.kind}:{self.subject} {self.state}>"


class AlertCondition(db.Model):
    """A condition seen by the evaluator that must last a while before it opens an incident.

    The row is written when the condition is first seen and deleted as soon as a run no
    longer sees it, so `first_seen_at` says how long it has held without interruption.
    """

    __tablename__ = "alert_conditions"

    kind: Mapped[str] = mapped_column(String(50), primary_key=True)
    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    first_seen_at = mapped_column(UTCDateTime, nullable=False)
