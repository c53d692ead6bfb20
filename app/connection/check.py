"""Test connection for application mode: can the app get a token and read each room's calendar?

Support staff use the answer to fix a room's UPN or the tenant's access policy, so each
room gets its own verdict. The rooms are read through ``$batch``: 300 rooms cost 15
requests, not 300, and still more than a portal request may wait for, so the test runs as
a job (:func:`queue_connection_test`, :func:`run_connection_test_job`) and its report is
stored for the page (`app.connection.reports`). Besides the report, only the connection
state the token proves is stored and, when the test marks the integration connected,
subscription jobs for rooms without one.
"""

import logging
from dataclasses import asdict, dataclass, field

from app.connection import reports
from app.extensions import db
from app.graph import error_texts
from app.graph.client import BatchRequest
from app.graph.paths import mailbox_path
from app.graph.tokens import ReconnectRequired, TokenError, graph_client_for, token_provider_for
from app.jobs import queue
from app.jobs.handlers import handler
from app.models import Integration
from app.models.calendar_link import MAILBOX_ME, CalendarLink
from app.models.integration import CONNECTION_CONNECTED
from app.models.integration_report import REPORT_CONNECTION_TEST
from app.subscriptions.jobs import SUBSCRIBE_LINK

log = logging.getLogger(__name__)

#: The job kind of a connection test; its key is the integration id.
CONNECTION_TEST = "connection_test"

OUTCOME_OK = "ok"
OUTCOME_NOT_FOUND = "not_found"
OUTCOME_ACCESS_DENIED = "access_denied"
OUTCOME_OTHER = "other"

OUTCOME_LABELS = {
    OUTCOME_OK: "ok",
    OUTCOME_NOT_FOUND: "mailbox not found",
    OUTCOME_ACCESS_DENIED: "access denied",
    OUTCOME_OTHER: "other error",
}

#: How each kind of failure counts in the report; the words shown come from app.graph.error_texts.
OUTCOME_OF_KIND = {
    error_texts.MAILBOX_NOT_FOUND: OUTCOME_NOT_FOUND,
    error_texts.MAILBOX_NOT_ENABLED: OUTCOME_NOT_FOUND,
    error_texts.ACCESS_DENIED: OUTCOME_ACCESS_DENIED,
}


@dataclass(frozen=True)
class RoomVerdict:
    """What reading one room's calendar showed."""

    mailbox: str
    object_name: str
    outcome: str
    #: The error as recorded (see :func:`app.graph.error_texts.explain`), or a sentence when the read worked.
    detail: str

    @property
    def label(self):
        return OUTCOME_LABELS[self.outcome]


@dataclass
class ConnectionReport:
    """The outcome of a connection test: a token problem, or one verdict per enabled room."""

    #: Why no token came, as recorded; the page explains it with app.graph.error_texts.
    token_problem: str | None = None
    rooms: list[RoomVerdict] = field(default_factory=list)

    def count(self, outcome):
        return sum(1 for room in self.rooms if room.outcome == outcome)

    def to_dict(self):
        """The report as stored for the page: texts and verdicts only, never a token."""
        return {"token_problem": self.token_problem, "rooms": [asdict(room) for room in self.rooms]}

    @classmethod
    def from_dict(cls, stored):
        return cls(token_problem=stored.get("token_problem"), rooms=[RoomVerdict(**room) for room in stored["rooms"]])


def queue_connection_test(integration):
    """Ask for a connection test of *integration*; the job runs it. Joins the caller's transaction."""
    reports.request_report(integration, REPORT_CONNECTION_TEST, CONNECTION_TEST)


def connection_test_progress(integration):
    """How far the latest connection test of *integration* got (see :class:`app.connection.reports.Progress`)."""
    return reports.progress_of(integration.id, REPORT_CONNECTION_TEST, CONNECTION_TEST)


@handler(CONNECTION_TEST)
def run_connection_test_job(key, payload):
    """Run the connection test of integration *key* and store its report for the page; return the report. Commits."""
    integration = db.session.get(Integration, int(key))
    if integration is None or integration.is_delegated:
        return  # removed, or switched to signing in, since the click
    answering = reports.latest_request(integration.id, REPORT_CONNECTION_TEST)
    report = run_connection_test(integration)
    reports.store_result(integration.id, REPORT_CONNECTION_TEST, answering, report.to_dict())
    db.session.commit()
    return report


def run_connection_test(integration):
    """Fetch a fresh app-only token for *integration*, then read ``users/{upn}/calendar`` of each enabled room.

    A fresh token, rather than a cached one, proves the client secret works now. When the
    token works, the integration is marked connected.
    """
    provider = token_provider_for(integration)
    try:
        provider.refresh_token()
    except TokenError as failure:
        return ConnectionReport(token_problem=_token_problem(failure))
    mark_connected(integration)
    links = _enabled_rooms(integration)
    if not links:
        return ConnectionReport()
    client = graph_client_for(integration, token_provider=provider)
    try:
        results = client.batch([_calendar_request(link) for link in links])
    except TokenError as failure:
        return ConnectionReport(token_problem=_token_problem(failure))
    by_id = {result.id: result for result in results}
    return ConnectionReport(rooms=[_verdict(link, by_id[str(link.id)]) for link in links])


def _token_problem(failure):
    # The reason keeps the AADSTS code, from which the page finds what to do.
    return failure.reason if isinstance(failure, ReconnectRequired) else str(failure)


def mark_connected(integration):
    """A token proved the settings work: mark *integration* connected, start rooms lacking a subscription. Commits."""
    if integration.connection_state != CONNECTION_CONNECTED or integration.connection_error:
        integration.connection_state = CONNECTION_CONNECTED
        integration.connection_error = None
        # Rooms added while the integration was not connected got no subscription: start them now.
        for link in _enabled_rooms(integration):
            if not link.subscription_id:
                queue.enqueue(SUBSCRIBE_LINK, str(link.id))
        db.session.commit()


def _enabled_rooms(integration):
    return db.session.scalars(
        db.select(CalendarLink)
        .where(
            CalendarLink.integration_id == integration.id,
            CalendarLink.enabled.is_(True),
            CalendarLink.mailbox != MAILBOX_ME,
        )
        .order_by(CalendarLink.mailbox)
    ).all()


def _calendar_request(link):
    return BatchRequest(id=str(link.id), method="GET", url=f"/{mailbox_path(link)}/calendar?$select=id")


def _verdict(link, result):
    outcome, detail = classify(result)
    return RoomVerdict(link.mailbox, link.object.name, outcome, detail)


def classify(result):
    """(outcome, detail) for one :class:`~app.graph.client.BatchResult` of a calendar read."""
    if result.ok:
        return OUTCOME_OK, "The calendar can be read."
    explained = error_texts.explain(result.error)
    return OUTCOME_OF_KIND.get(explained.kind, OUTCOME_OTHER), explained.raw
