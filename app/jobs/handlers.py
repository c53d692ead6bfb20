"""What each job kind does: a registry from kind to a function of (key, payload)."""

import importlib

from app import clock
from app.extensions import db
from app.jobs import queue
from app.models import CalendarLink

SYNC_LINK = "sync_link"
#: The `reason` of a sync the polling fallback asked for.
POLL = "poll"

#: Modules whose import registers handlers; a feature with its own job kinds adds its module here.
HANDLER_MODULES = (
    "app.jobs.handlers",
    "app.subscriptions.jobs",
    "app.outbound.push",
    "app.alerts.delivery",
    "app.jobs.retention",
    "app.connection.check",
    "app.connection.verify",
    "app.connection.discovery",
    "app.oauth.account_switch",
    "app.sync.conflict_retry",
    "app.auth.passwords",
)

_handlers = {}


def handler(kind):
    """Register the decorated function as the one that runs jobs of `kind`.

    The function receives the job's key (a string) and payload (a dict). Returning
    normally completes the job; raising fails it (see `queue.fail` for retries).
    """

    def register(function):
        if kind in _handlers and _handlers[kind] is not function:
            raise ValueError(f"a handler for job kind {kind!r} is registered already")
        _handlers[kind] = function
        return function

    return register


def unregister(kind):
    """Forget the handler of `kind` (tests register throw-away kinds)."""
    _handlers.pop(kind, None)


def handler_for(kind):
    """The function registered for `kind`, or None."""
    return _handlers.get(kind)


def known_kinds():
    """Kinds this process can run; the pool claims only these."""
    return sorted(_handlers)


def load_handlers():
    """Import the modules that register handlers, then return the kinds this process can run."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)
    return known_kinds()


@handler(SYNC_LINK)
def run_link_sync(key, payload):
    """Inbound sync of one calendar link; key is the link id."""
    # Imported here: the sync engine pulls in the Graph client, which the queue does not need.
    from app.sync.engine import sync_link

    link = db.session.get(CalendarLink, int(key))
    # A link removed or switched off since the job was queued has nothing left to sync.
    if link is None or not link.enabled:
        return
    summary = sync_link(int(key), full=bool(payload.get("full", False)))
    if payload.get("reason") == POLL and summary.created + summary.updated + summary.cancelled:
        # Polling found changes no notification announced (alert rule "webhook silent").
        link.last_poll_change_at = clock.utcnow()
        db.session.commit()


def enqueue_link_sync(link_id, full=False, reason=None):
    """Ask for an inbound sync of one link; coalesces with a sync already pending.

    `reason` POLL marks a sync asked for by the polling fallback. Joins the caller's
    transaction: commit to make the job visible to the runners.
    """
    payload = {"full": True} if full else {}
    if reason:
        payload["reason"] = reason
    return queue.enqueue(SYNC_LINK, str(link_id), payload=payload)


def failed_link_syncs(integration_id, *, limit=100):
    """Parked sync jobs of one integration's links, newest failure first."""
    link_ids = db.session.scalars(db.select(CalendarLink.id).where(CalendarLink.integration_id == integration_id))
    return queue.failed_jobs(SYNC_LINK, keys=list(link_ids), limit=limit)
