"""*Try again* on a conflict: a job reads the one appointment from Outlook and decides it as the sync would.

A portal click never waits on Graph, so the click queues this job and says so; the
conflict row shows what the job found once it ran.
"""

from app import clock
from app.clock import utc_to_local
from app.extensions import db
from app.jobs import queue
from app.jobs.handlers import handler
from app.models import Job, SyncConflict
from app.models.job import JOB_QUEUED, JOB_RUNNING

RETRY_CONFLICT = "retry_conflict"


def enqueue_conflict_retry(conflict):
    """Queue *Try again* for one conflict; coalesces with one pending. Joins the caller's transaction."""
    return queue.enqueue(RETRY_CONFLICT, str(conflict.id))


def retry_pending(conflict_ids):
    """The ids among `conflict_ids` whose *Try again* is queued or running."""
    keys = [str(conflict_id) for conflict_id in conflict_ids]
    if not keys:
        return set()
    query = db.select(Job.key).where(
        Job.kind == RETRY_CONFLICT, Job.key.in_(keys), Job.state.in_((JOB_QUEUED, JOB_RUNNING))
    )
    return {int(key) for key in db.session.scalars(query)}


@handler(RETRY_CONFLICT)
def retry_conflict(key, payload):
    """Decide the conflict's appointment again; key is the conflict id."""
    # Imported here: the engine pulls in the Graph client, which the queue does not need.
    from app.sync.engine import describe_error, sync_one_event

    conflict = db.session.get(SyncConflict, int(key))
    if conflict is None:
        return
    link_id, event_id = conflict.link_id, conflict.event_id
    timezone = conflict.link.integration.organisation.timezone
    try:
        sync_one_event(link_id, event_id)
    except Exception as error:  # noqa: BLE001 - the person who clicked reads the outcome on the conflict
        db.session.rollback()
        # Not raised again: a parked retry would be seen nowhere, the note is seen where the button was.
        _note(link_id, event_id, timezone, f"Outlook could not be read ({describe_error(error)}); try again later.")
        return
    _note(link_id, event_id, timezone, None)


def _note(link_id, event_id, timezone, trouble):
    still_open = db.session.scalar(
        db.select(SyncConflict).where(SyncConflict.link_id == link_id, SyncConflict.event_id == event_id)
    )
    if still_open is None:
        return
    tried_at = utc_to_local(clock.utcnow(), timezone)
    if trouble is None:
        clash = f"booking {still_open.booking_id}" if still_open.booking_id else "another booking"
        trouble = f"the appointment still overlaps {clash}."
    still_open.note = f"Tried again at {tried_at:%Y-%m-%d %H:%M}: {trouble}"
    db.session.commit()
