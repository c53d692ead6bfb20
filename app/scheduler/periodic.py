"""Periodic jobs, run only by the process holding the scheduler lease.

Each job is a plain function of `now` that decides what is due and enqueues it; the work
itself runs in the job pool of every process. Jobs fill named slots, each with its own
interval. A slot without a function is simply not scheduled, so a feature plugs in by
decorating its function::

    @periodic("renew_subscriptions")
    def renew_subscriptions(now): ...

in a module imported before the runner starts (see `load_periodic_jobs`).
"""

import importlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, cast, exists, or_, select

from app.extensions import db
from app.jobs.handlers import POLL, SYNC_LINK, enqueue_link_sync
from app.models import CalendarLink, Integration, Job
from app.models.integration import CONNECTION_CONNECTED
from app.models.job import JOB_FAILED

log = logging.getLogger(__name__)

#: Slot name -> how often its job runs.
SLOTS = {
    "poll_stale_links": timedelta(minutes=5),
    "daily_full_sync": timedelta(minutes=15),
    "renew_subscriptions": timedelta(minutes=15),
    "create_missing_subscriptions": timedelta(minutes=15),
    "evaluate_alerts": timedelta(minutes=1),
    # Only makes sure the nightly prune is queued (app/jobs/retention.py): often, so restarts never skip a night.
    "prune_history": timedelta(minutes=15),
    # Only makes sure each integration's daily sweep for orphan subscriptions is queued (app/subscriptions/jobs.py).
    "sweep_orphan_subscriptions": timedelta(minutes=15),
}

#: Modules whose import registers periodic jobs; a new feature adds its module here.
PERIODIC_MODULES = ("app.scheduler.periodic", "app.subscriptions.jobs", "app.alerts.incidents", "app.jobs.retention")

#: A link without a sync for this long is synced by polling, in case notifications were missed.
STALE_AFTER = timedelta(minutes=30)
#: A full round this often moves the −past/+future window forward and catches anything missed.
FULL_SYNC_EVERY = timedelta(hours=24)
#: Jobs queued per transaction by the periodic jobs that queue one per link.
ENQUEUE_CHUNK = 25

_registered = {}


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every: timedelta
    function: object


def periodic(slot):
    """Register the decorated function of `now` as the job of `slot` (one of SLOTS)."""
    if slot not in SLOTS:
        raise ValueError(f"unknown periodic slot {slot!r}; known: {', '.join(SLOTS)}")

    def register(function):
        if _registered.get(slot, function) is not function:
            raise ValueError(f"periodic slot {slot!r} has a job already")
        _registered[slot] = function
        return function

    return register


def load_periodic_jobs():
    """Import the modules that register periodic jobs, then list the scheduled ones in slot order."""
    for module in PERIODIC_MODULES:
        importlib.import_module(module)
    return [PeriodicJob(name, every, _registered[name]) for name, every in SLOTS.items() if name in _registered]


def next_time_of_day(now, at):
    """The first moment after `now` at which a UTC clock shows `at`: when a daily job queued now should run."""
    now = now.astimezone(UTC)
    today = datetime.combine(now.date(), at, tzinfo=UTC)
    return today if today > now else today + timedelta(days=1)


def empty_slots():
    """Slots no function has filled (yet); the runner logs them at start."""
    return [name for name in SLOTS if name not in _registered]


@periodic("poll_stale_links")
def poll_stale_links(now):
    """Queue an inbound sync for every connected link without a sync for STALE_AFTER (or ever).

    Returns the ids of the links queued. Commits.
    """
    return _queue_syncs_of_links_due(
        CalendarLink.last_sync_at,
        now - STALE_AFTER,
        now,
        lambda link_id: enqueue_link_sync(link_id, reason=POLL),
        "Polling fallback queued %s link(s) without a recent sync",
    )


@periodic("daily_full_sync")
def daily_full_sync(now):
    """Queue a full sync for every connected link whose last full round is FULL_SYNC_EVERY old (or never ran).

    Returns the ids of the links queued. Commits.
    """
    return _queue_syncs_of_links_due(
        CalendarLink.last_full_sync_at,
        now - FULL_SYNC_EVERY,
        now,
        lambda link_id: enqueue_link_sync(link_id, full=True),
        "Daily full sync queued %s link(s)",
    )


def _queue_syncs_of_links_due(moment_column, older_than, now, enqueue, message):
    link_ids = _links_due(moment_column, older_than, now)
    _enqueue_in_chunks(link_ids, enqueue)
    if link_ids:
        log.info(message, len(link_ids))
    return link_ids


def _enqueue_in_chunks(link_ids, enqueue):
    """Queue one job per link, committing every ENQUEUE_CHUNK links.

    Queueing a job per room of a large fleet takes a while; the job threads start on the
    first rooms meanwhile instead of waiting for the last, and no transaction holds
    SQLite's write lock against them for long. A failure part-way leaves the rest to the
    next run, which finds them still due.
    """
    for start in range(0, len(link_ids), ENQUEUE_CHUNK):
        for link_id in link_ids[start : start + ENQUEUE_CHUNK]:
            enqueue(link_id)
        db.session.commit()


def _links_due(moment_column, older_than, now):
    """Enabled links of connected integrations whose `moment_column` is before `older_than` or empty.

    Links whose sync was parked as failed within STALE_AFTER are left alone, so a broken
    link is tried every half hour rather than at every tick.
    """
    failed_recently = exists().where(
        Job.kind == SYNC_LINK,
        Job.key == cast(CalendarLink.id, String),
        Job.state == JOB_FAILED,
        Job.failed_at > now - STALE_AFTER,
    )
    query = (
        select(CalendarLink.id)
        .join(Integration, CalendarLink.integration_id == Integration.id)
        .where(
            CalendarLink.enabled.is_(True),
            Integration.connection_state == CONNECTION_CONNECTED,
            or_(moment_column.is_(None), moment_column < older_than),
            ~failed_recently,
        )
        .order_by(CalendarLink.id)
    )
    return list(db.session.scalars(query))
