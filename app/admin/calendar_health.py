"""What the status pages show: per-calendar health, recent sync activity, jobs, the scheduler.

Read-only queries; the views decide what to do with the answers. Everything is counted
in the database, so an integration with hundreds of rooms costs a handful of queries.
"""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import String, and_, case, cast, func, or_, select

from app.extensions import db
from app.jobs.handlers import SYNC_LINK
from app.models import CalendarLink, Integration, Job, Organisation, SyncLogEntry
from app.models.calendar_link import SYNC_ERROR, SYNC_NEVER
from app.models.integration import CONNECTION_NEEDS_RECONNECT
from app.models.job import JOB_FAILED, JOB_QUEUED, JOB_RUNNING
from app.scheduler import lease
from app.subscriptions.jobs import RECREATE_SUBSCRIPTION, RENEW_SUBSCRIPTION, SUBSCRIBE_LINK

HEALTH_OK = "ok"
HEALTH_ERROR = "error"
HEALTH_NEVER = "never"
HEALTH_STATES = (HEALTH_OK, HEALTH_ERROR, HEALTH_NEVER)

#: Job kinds whose key is a calendar link id: the jobs a status page can attribute to an integration.
LINK_JOB_KINDS = (SYNC_LINK, SUBSCRIBE_LINK, RENEW_SUBSCRIPTION, RECREATE_SUBSCRIPTION)
JOB_KIND_LABELS = {
    SYNC_LINK: "sync",
    SUBSCRIBE_LINK: "create subscription",
    RENEW_SUBSCRIPTION: "renew subscription",
    RECREATE_SUBSCRIPTION: "create subscription again",
}

#: Sync log actions that changed a booking, as counted on the status page.
BOOKING_ACTIONS = ("create", "update", "cancel")
ACTIVITY_PERIOD = timedelta(hours=24)


def link_health():
    """A calendar's health as SQL: `error` (its last sync or its subscription failed), `never` or `ok`."""
    return case(
        (or_(CalendarLink.last_sync_status == SYNC_ERROR, CalendarLink.subscription_error.is_not(None)), HEALTH_ERROR),
        (CalendarLink.last_sync_status == SYNC_NEVER, HEALTH_NEVER),
        else_=HEALTH_OK,
    )


def health_of(link):
    """The same verdict as `link_health`, for a loaded row."""
    if link.last_sync_status == SYNC_ERROR or link.subscription_error:
        return HEALTH_ERROR
    if link.last_sync_status == SYNC_NEVER:
        return HEALTH_NEVER
    return HEALTH_OK


@dataclass
class CalendarCounts:
    """Calendars of one integration; `ok`, `error` and `never` count enabled ones only."""

    total: int = 0
    disabled: int = 0
    ok: int = 0
    error: int = 0
    never: int = 0
    last_sync_at: object = None


def calendar_counts(integration_ids):
    """`CalendarCounts` per integration id (every id given gets one, empty if it has no calendars)."""
    counts = {integration_id: CalendarCounts() for integration_id in integration_ids}
    if not counts:
        return counts
    health = link_health()
    rows = db.session.execute(
        select(
            CalendarLink.integration_id, CalendarLink.enabled, health, func.count(), func.max(CalendarLink.last_sync_at)
        )
        .where(CalendarLink.integration_id.in_(list(counts)))
        .group_by(CalendarLink.integration_id, CalendarLink.enabled, health)
    )
    for integration_id, enabled, state, number, last_sync_at in rows:
        entry = counts[integration_id]
        entry.total += number
        if enabled:
            setattr(entry, state, getattr(entry, state) + number)
        else:
            entry.disabled += number
        if last_sync_at is not None and (entry.last_sync_at is None or last_sync_at > entry.last_sync_at):
            entry.last_sync_at = last_sync_at
    return counts


@dataclass
class BookingActivity:
    created: int = 0
    updated: int = 0
    cancelled: int = 0


def booking_activity(integration_id, now):
    """Bookings created, updated and cancelled by inbound sync in the 24 hours before `now`."""
    rows = db.session.execute(
        select(SyncLogEntry.action, func.count())
        .where(
            SyncLogEntry.integration_id == integration_id,
            SyncLogEntry.direction == "inbound",
            SyncLogEntry.action.in_(BOOKING_ACTIONS),
            SyncLogEntry.created_at >= now - ACTIVITY_PERIOD,
            SyncLogEntry.created_at <= now,
        )
        .group_by(SyncLogEntry.action)
    )
    counts = {action: number for action, number in rows}
    return BookingActivity(
        created=counts.get("create", 0), updated=counts.get("update", 0), cancelled=counts.get("cancel", 0)
    )


def _link_keys(integration_id):
    return select(cast(CalendarLink.id, String)).where(CalendarLink.integration_id == integration_id)


def _jobs_of(integration_id):
    return and_(Job.kind.in_(LINK_JOB_KINDS), Job.key.in_(_link_keys(integration_id)))


@dataclass
class JobFigures:
    pending: int
    running: int
    failed: int


def job_figures(integration_id):
    """Jobs of this integration's calendars: pending (due or waiting for a retry), running, failed."""
    rows = db.session.execute(select(Job.state, func.count()).where(_jobs_of(integration_id)).group_by(Job.state))
    by_state = {state: number for state, number in rows}
    return JobFigures(
        pending=by_state.get(JOB_QUEUED, 0), running=by_state.get(JOB_RUNNING, 0), failed=by_state.get(JOB_FAILED, 0)
    )


@dataclass
class FailedJob:
    job: Job
    link: CalendarLink | None

    @property
    def label(self):
        return JOB_KIND_LABELS.get(self.job.kind, self.job.kind)


def failed_jobs(integration_id, *, limit=50):
    """Parked jobs of this integration's calendars, newest failure first, each with its calendar."""
    jobs = db.session.scalars(
        select(Job)
        .where(_jobs_of(integration_id), Job.state == JOB_FAILED)
        .order_by(Job.failed_at.desc(), Job.id.desc())
        .limit(limit)
    ).all()
    links = {
        str(link.id): link
        for link in db.session.scalars(
            select(CalendarLink).where(CalendarLink.id.in_([int(job.key) for job in jobs if job.key.isdigit()]))
        )
    }
    return [FailedJob(job, links.get(job.key)) for job in jobs]


def job_of_integration(integration_id, job_id):
    """The job, when it is one of this integration's calendars' jobs; otherwise None."""
    return db.session.scalar(select(Job).where(Job.id == job_id, _jobs_of(integration_id)))


def failed_job_counts(integration_ids):
    """{integration id: number of parked jobs of its calendars}."""
    if not integration_ids:
        return {}
    rows = db.session.execute(
        select(CalendarLink.integration_id, func.count(Job.id))
        .join(Job, and_(Job.key == cast(CalendarLink.id, String), Job.kind.in_(LINK_JOB_KINDS)))
        .where(CalendarLink.integration_id.in_(list(integration_ids)), Job.state == JOB_FAILED)
        .group_by(CalendarLink.integration_id)
    )
    return {integration_id: number for integration_id, number in rows}


@dataclass
class Heartbeat:
    holder: str | None
    last_tick_at: object
    alive: bool


def scheduler_heartbeat():
    """Which process holds the scheduler lease and when it last ticked; `alive` is False once it expired."""
    row = lease.current()
    return Heartbeat(
        holder=row.holder if row else None,
        last_tick_at=row.last_tick_at if row else None,
        alive=lease.is_held(row),
    )


@dataclass
class OverviewRow:
    integration: Integration
    organisation: Organisation
    calendars: CalendarCounts
    failed_jobs: int

    @property
    def needs_reconnect(self):
        return self.integration.connection_state == CONNECTION_NEEDS_RECONNECT

    @property
    def trouble(self):
        """0 needs reconnect, 1 failing calendars, 2 failed jobs, 3 nothing wrong: the overview's order."""
        if self.needs_reconnect:
            return 0
        if self.calendars.error:
            return 1
        if self.failed_jobs:
            return 2
        return 3


def overview():
    """Every integration of every organisation, the broken ones first."""
    pairs = db.session.execute(
        select(Integration, Organisation).join(Organisation, Integration.organisation_id == Organisation.id)
    ).all()
    ids = [integration.id for integration, _ in pairs]
    counts = calendar_counts(ids)
    failed = failed_job_counts(ids)
    rows = [
        OverviewRow(integration, organisation, counts[integration.id], failed.get(integration.id, 0))
        for integration, organisation in pairs
    ]
    rows.sort(
        key=lambda row: (
            row.trouble,
            -row.calendars.error,
            -row.failed_jobs,
            row.organisation.name.lower(),
            row.integration.name.lower(),
        )
    )
    return rows
