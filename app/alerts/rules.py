"""Alert rules: pure questions to the database about what is wrong right now.

Each rule returns `Finding`s, one per subject in trouble, and may name subjects it
cannot judge this time (`Verdict.unknown`): their open incidents neither resolve nor get
reminders. A finding with `hold_for` must be seen without interruption for that long
before it becomes an incident; `incidents.evaluate` keeps that memory. Rules read
settings from the app config (thresholds, see config.py) and take `now` from the caller.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select

from app.clock import utc_to_local
from app.database import server_time
from app.extensions import db
from app.jobs import queue
from app.jobs.handlers import SYNC_LINK
from app.models import CalendarLink, Integration, Job
from app.models.calendar_link import SYNC_ERROR
from app.models.incident import SEVERITY_CRITICAL, SEVERITY_WARNING, SUBJECT_INSTALLATION
from app.models.integration import CONNECTION_CONNECTED, CONNECTION_NEEDS_RECONNECT
from app.models.job import JOB_FAILED
from app.public_urls import notification_url
from app.scheduler import lease

NEEDS_RECONNECT = "needs_reconnect"
LINK_FAILING = "link_failing"
SUBSCRIPTION_MISSING = "subscription_missing"
WEBHOOK_SILENT = "webhook_silent"
JOBS_FAILED = "jobs_failed"
QUEUE_BACKLOG = "queue_backlog"
SCHEDULER_DOWN = "scheduler_down"

#: What each kind of incident is called in the portal, in mails and in metrics.
KIND_LABELS = {
    NEEDS_RECONNECT: "Integration needs reconnecting",
    LINK_FAILING: "Calendar sync failing",
    SUBSCRIPTION_MISSING: "No change-notification subscription",
    WEBHOOK_SILENT: "Change notifications not arriving",
    JOBS_FAILED: "Background jobs parked as failed",
    QUEUE_BACKLOG: "Job queue backlog",
    SCHEDULER_DOWN: "Scheduler not running",
}
#: Kinds about one calendar: frozen while their integration needs reconnecting.
LINK_KINDS = (LINK_FAILING, SUBSCRIPTION_MISSING, WEBHOOK_SILENT)

#: Parked jobs keyed by a calendar link id that other rules report with their own threshold:
#: a parked sync is tried again by polling (link_failing), a parked subscription job by the
#: scheduler (subscription_missing).
LINK_WATCHED_JOB_KINDS = (SYNC_LINK, "subscribe_link", "renew_subscription", "recreate_subscription")
#: Parked jobs whose key starts with "<integration id>:".
INTEGRATION_KEYED_JOB_KINDS = ("outbound_booking",)

ERROR_TEXT_LIMIT = 500


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    severity: str
    message: str
    organisation_id: int | None = None
    integration_id: int | None = None
    link_id: int | None = None
    integration_name: str | None = None
    mailbox: str | None = None
    hold_for: timedelta | None = None

    @property
    def key(self):
        return (self.kind, self.subject)


@dataclass
class Verdict:
    findings: list = field(default_factory=list)
    unknown: set = field(default_factory=set)

    def add(self, other):
        self.findings.extend(other.findings)
        self.unknown |= other.unknown


def integration_subject(integration_id):
    return f"integration:{integration_id}"


def link_subject(link_id):
    return f"link:{link_id}"


def evaluate_rules(now):
    """Run every rule; the combined `Verdict`."""
    verdict = Verdict()
    for rule in RULES:
        verdict.add(rule(now))
    return verdict


# -- integrations and calendars ------------------------------------------------------------


def needs_reconnect(now):
    """Microsoft refused the tokens or the app's credentials: a person has to act."""
    verdict = Verdict()
    rows = db.session.scalars(
        select(Integration).where(Integration.connection_state == CONNECTION_NEEDS_RECONNECT).order_by(Integration.id)
    )
    for integration in rows:
        reason = _short(integration.connection_error or "Microsoft no longer accepts the sign-in")
        if integration.is_delegated:
            action = "Press Connect with Microsoft on the integration page to restore the sync."
        else:
            action = "Correct the settings if needed, then test the connection on the integration page."
        verdict.findings.append(
            Finding(
                NEEDS_RECONNECT,
                integration_subject(integration.id),
                SEVERITY_CRITICAL,
                f"Integration {integration.name} needs reconnecting: {reason} "
                f"No calendar is synced until then. {action}",
                **_about(integration),
            )
        )
    return verdict


def link_failing(now):
    """A calendar whose syncs have failed for longer than the threshold, or too often in a row."""
    settings = current_app.config
    failing_for = timedelta(minutes=float(settings.get("ALERT_LINK_FAILING_MINUTES", 60)))
    in_a_row = int(settings.get("ALERT_LINK_FAILING_SYNCS", 5))
    verdict = Verdict(unknown=_frozen_link_subjects(LINK_FAILING))
    rows = db.session.execute(
        _active_links().where(
            CalendarLink.last_sync_status == SYNC_ERROR,
            or_(CalendarLink.failing_since <= now - failing_for, CalendarLink.consecutive_failures >= in_a_row),
        )
    )
    for link, integration in rows:
        # Messages name fixed moments, not ages: a message only changes when the facts do.
        since = f" since {_at(link.failing_since, integration)}" if link.failing_since else ""
        verdict.findings.append(
            Finding(
                LINK_FAILING,
                link_subject(link.id),
                SEVERITY_CRITICAL,
                f"{_calendar(link)} of {integration.name} has failed to sync{since} "
                f"({link.consecutive_failures} attempt(s) in a row): {_short(link.last_sync_error)} "
                "Bookings do not follow Outlook until it syncs again.",
                **_about(integration, link),
            )
        )
    return verdict


def subscription_missing(now):
    """A calendar without a live change-notification subscription, or whose renewal keeps failing."""
    hold = timedelta(minutes=float(current_app.config.get("ALERT_SUBSCRIPTION_MINUTES", 60)))
    verdict = Verdict(unknown=_frozen_link_subjects(SUBSCRIPTION_MISSING))
    rows = db.session.execute(
        _active_links().where(
            or_(
                CalendarLink.subscription_error.is_not(None),
                CalendarLink.subscription_id.is_(None),
                CalendarLink.subscription_expires_at <= now,
            )
        )
    )
    for link, integration in rows:
        if link.subscription_error:
            problem = f"cannot be created or renewed: {_short(link.subscription_error)}"
        else:
            problem = "does not exist or has expired."
        verdict.findings.append(
            Finding(
                SUBSCRIPTION_MISSING,
                link_subject(link.id),
                SEVERITY_WARNING,
                f"The change-notification subscription of {_calendar(link, capital=False)} "
                f"of {integration.name} {problem} "
                f"Check that {notification_url()} is reachable from Microsoft over HTTPS. Meanwhile polling "
                "syncs the calendar every 30 minutes, so changes arrive late.",
                hold_for=hold,
                **_about(integration, link),
            )
        )
    return verdict


def webhook_silent(now):
    """A subscribed calendar that heard no notification for a day while polling keeps finding changes."""
    silent_for = timedelta(hours=float(current_app.config.get("ALERT_WEBHOOK_SILENT_HOURS", 24)))
    verdict = Verdict(unknown=_frozen_link_subjects(WEBHOOK_SILENT))
    rows = db.session.execute(
        _active_links().where(
            CalendarLink.subscription_id.is_not(None),
            CalendarLink.subscription_expires_at > now,
            CalendarLink.last_poll_change_at > now - silent_for,
        )
    )
    for link, integration in rows:
        heard_last = link.last_notification_at or link.created_at
        if heard_last is None or heard_last > now - silent_for or link.last_poll_change_at <= heard_last:
            continue
        last = f"since {_at(link.last_notification_at, integration)}" if link.last_notification_at else "ever"
        verdict.findings.append(
            Finding(
                WEBHOOK_SILENT,
                link_subject(link.id),
                SEVERITY_WARNING,
                f"{_calendar(link)} of {integration.name} has received no change notification {last}, "
                f"while polling found changes (last at {_at(link.last_poll_change_at, integration)}): "
                f"notifications from Microsoft do not reach {notification_url()}. "
                "Changes arrive only by polling, up to 30 minutes late.",
                **_about(integration, link),
            )
        )
    return verdict


def _active_links():
    """(link, integration) of enabled calendars of connected integrations: the ones expected to sync."""
    return (
        select(CalendarLink, Integration)
        .join(Integration, CalendarLink.integration_id == Integration.id)
        .where(CalendarLink.enabled.is_(True), Integration.connection_state == CONNECTION_CONNECTED)
        .order_by(CalendarLink.id)
    )


def _frozen_link_subjects(kind):
    """Calendars of integrations that need reconnecting cannot sync: their state is unknown, not fixed."""
    link_ids = db.session.scalars(
        select(CalendarLink.id)
        .join(Integration, CalendarLink.integration_id == Integration.id)
        .where(Integration.connection_state == CONNECTION_NEEDS_RECONNECT)
    )
    return {(kind, link_subject(link_id)) for link_id in link_ids}


# -- background work -------------------------------------------------------------------


def jobs_failed(now):
    """Parked jobs, per integration where the job belongs to one, else for the installation."""
    verdict = Verdict()
    parked = db.session.execute(
        select(Job.kind, Job.key, Job.last_error)
        .where(Job.state == JOB_FAILED, Job.kind.not_in(LINK_WATCHED_JOB_KINDS))
        .order_by(Job.failed_at.desc(), Job.id.desc())
    ).all()
    if not parked:
        return verdict
    integrations = _integrations_of(parked)
    by_integration, unattributed = {}, []
    for kind, key, last_error in parked:
        integration = integrations.get(_integration_id_of(kind, key))
        if integration is None:
            unattributed.append((kind, last_error))
        else:
            by_integration.setdefault(integration.id, (integration, []))[1].append((kind, last_error))
    for integration, jobs in by_integration.values():
        verdict.findings.append(
            Finding(
                JOBS_FAILED,
                integration_subject(integration.id),
                SEVERITY_WARNING,
                f"{len(jobs)} background job(s) of {integration.name} failed and were parked; the latest: "
                f"{_short(jobs[0][1])} Retry them on the integration page once the cause is fixed.",
                **_about(integration),
            )
        )
    if unattributed:
        kinds = ", ".join(sorted({kind for kind, _ in unattributed}))
        verdict.findings.append(
            Finding(
                JOBS_FAILED,
                SUBJECT_INSTALLATION,
                SEVERITY_WARNING,
                f"{len(unattributed)} background job(s) failed and were parked ({kinds}); the latest: "
                f"{_short(unattributed[0][1])} See `flask jobs list --failed`, then `flask jobs retry`.",
            )
        )
    return verdict


def _integration_id_of(kind, key):
    if kind in INTEGRATION_KEYED_JOB_KINDS:
        head = key.split(":", 1)[0]
        return int(head) if head.isdigit() else None
    return None


def _integrations_of(parked):
    ids = {_integration_id_of(kind, key) for kind, key, _ in parked} - {None}
    if not ids:
        return {}
    return {row.id: row for row in db.session.scalars(select(Integration).where(Integration.id.in_(ids)))}


def queue_backlog(now):
    """Due jobs pile up: the oldest has waited too long, or too many are due for too long."""
    settings = current_app.config
    wait = timedelta(minutes=float(settings.get("ALERT_QUEUE_BACKLOG_MINUTES", 15)))
    limit = int(settings.get("ALERT_QUEUE_BACKLOG_JOBS", 500))
    due = queue.state_counts(now=now)["due"]
    oldest = queue.oldest_queued_age(now=now)
    if oldest is not None and oldest > wait:
        hold = None
    elif due > limit:
        hold = wait
    else:
        return Verdict()
    waited = f"; the oldest since {_at(now - oldest)}" if oldest is not None else ""
    return Verdict(
        findings=[
            Finding(
                QUEUE_BACKLOG,
                SUBJECT_INSTALLATION,
                SEVERITY_WARNING,
                f"{due} background job(s) are due{waited}. The job workers do not keep up, or none are running "
                "(check SCHEDULER_ENABLED and JOB_WORKERS).",
                hold_for=hold,
            )
        ]
    )


def scheduler_down(now):
    """The scheduler's heartbeat (its lease renewal) is older than the threshold.

    Ages come from the database clock, like the lease itself. Evaluated by the scheduler,
    this mostly notices a gap after the fact; the portal and /metrics compute the age on
    read as well, so a stopped scheduler shows there even though nothing evaluates it.
    """
    limit = timedelta(minutes=float(current_app.config.get("ALERT_SCHEDULER_MINUTES", 5)))
    row = lease.current()
    age = heartbeat_age(row)
    if age is None or age <= limit:
        return Verdict()
    return Verdict(
        findings=[
            Finding(
                SCHEDULER_DOWN,
                SUBJECT_INSTALLATION,
                SEVERITY_CRITICAL,
                f"The scheduler has not renewed its lease since {_at(row.last_tick_at)}: no polling, "
                "subscription renewal or daily full sync runs. "
                "Check that the gunicorn workers (or `flask scheduler run`) are up.",
            )
        ]
    )


def heartbeat_age(row=None):
    """How long ago the scheduler last ticked, on the database clock; None if it never ran."""
    row = row or lease.current()
    if row is None or row.last_tick_at is None:
        return None
    return server_time.database_now() - row.last_tick_at


RULES = (
    needs_reconnect,
    link_failing,
    subscription_missing,
    webhook_silent,
    jobs_failed,
    queue_backlog,
    scheduler_down,
)


# -- wording ---------------------------------------------------------------------------


def _about(integration, link=None):
    about = {
        "organisation_id": integration.organisation_id,
        "integration_id": integration.id,
        "integration_name": integration.name,
    }
    if link is not None:
        about.update(link_id=link.id, mailbox=link.mailbox)
    return about


def _calendar(link, capital=True):
    name = "the connected account's calendar" if link.is_me else f"calendar {link.mailbox}"
    return name[0].upper() + name[1:] if capital else name


def _short(text):
    if not text:
        return ""
    text = " ".join(str(text).split())
    if len(text) > ERROR_TEXT_LIMIT:
        text = text[: ERROR_TEXT_LIMIT - 1] + "…"
    return text if text.endswith((".", "…")) else text + "."


def _at(moment, integration=None):
    """A moment as the people concerned read it: in the organisation's time zone, or UTC."""
    if integration is None:
        return f"{moment:%Y-%m-%d %H:%M} UTC"
    timezone = integration.organisation.timezone
    return f"{utc_to_local(moment, timezone):%Y-%m-%d %H:%M} ({timezone})"


def describe_age(delta):
    seconds = max(int(delta.total_seconds()), 0)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
