"""The latest result of a read from Microsoft 365 that an admin asked for: a connection test or a room discovery.

Both run as jobs, never inside a portal request. The page asks for one (`request_number`
goes up), the job answers it (`answered_number` takes the number it served), and the page
shows the result once the two match, refreshing itself until then. One row per
integration and kind; a new request replaces the previous result when its job finishes.
"""

import json

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.database.column_types import UTCDateTime
from app.extensions import db

REPORT_CONNECTION_TEST = "connection_test"
REPORT_ROOM_DISCOVERY = "room_discovery"
REPORT_KINDS = (REPORT_CONNECTION_TEST, REPORT_ROOM_DISCOVERY)


class IntegrationReport(db.Model):
    """What the last connection test or room discovery of one integration found.

    `result_json` holds what the page shows (room verdicts, rooms found, or the problem
    text); it never holds a token or a secret.
    """

    __tablename__ = "integration_reports"
    __table_args__ = (
        CheckConstraint("kind IN ('connection_test', 'room_discovery')", name="kind_known"),
        UniqueConstraint("integration_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    request_number: Mapped[int] = mapped_column(default=0)
    requested_at = mapped_column(UTCDateTime, nullable=False)
    answered_number: Mapped[int | None] = mapped_column()
    finished_at = mapped_column(UTCDateTime)
    result_json: Mapped[str | None] = mapped_column("result", Text)

    @property
    def result(self):
        """The stored result as a dict, or None before the first job finished."""
        return json.loads(self.result_json) if self.result_json else None

    @property
    def answered(self):
        """Whether the stored result answers the latest request."""
        return self.answered_number == self.request_number
