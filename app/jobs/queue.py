"""The job queue: enqueue with coalescing, claim under a lease, complete, retry with backoff.

Rules the functions below keep, enforced by the database rather than by luck:

- **Coalescing.** At most one *pending* job (state `queued`, due now or waiting for a
  retry) exists per (kind, key): a partial unique index says so, and `enqueue` inserts
  with ``ON CONFLICT DO NOTHING``. While a job runs, one more pending job may wait
  behind it, so a change arriving mid-run is never lost, yet a burst of a thousand
  notifications gives one or two runs.
- **One run per key.** A second partial unique index allows one `running` job per
  (kind, key); `claim` skips keys that have one.
- **Leases.** A claimed job carries `lease_expires_at`; a job whose worker died is claimed
  again once its lease has passed. The runner's heartbeat extends the leases of jobs it
  is still running. Leases are set and compared on the database's clock
  (`app.database.server_time`), like the scheduler lease, so hosts whose clocks disagree
  never take each other's running jobs; when a job is due (`run_at`) follows the host's
  clock, `app.clock.utcnow()`.
- **Bounded retries.** Transient failures wait 30 s, 1 min, 2 min, ... (at most an hour,
  at least any Retry-After the error carries, plus up to 10 % jitter) and are parked as
  `failed` after `JOB_MAX_ATTEMPTS` claims. Errors that declare ``is_transient = False``
  are parked at once: retrying cannot help, and the polling fallback or an admin retry
  brings the work back. Errors that declare nothing are treated as transient.
- **Claim per backend.** PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` so claimants
  pass each other. SQLite: a plain read, then a conditional ``UPDATE`` whose row count
  says whether this claimant won; SQLite serialises writers, so one wins.

`enqueue` and `ensure_queued` join the caller's transaction (the job exists once the
caller commits); `claim`, `complete`, `fail`, `extend_lease` and `retry` commit their own
short transactions and are meant for the job runner, the CLI and the portal.
"""

import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, case, delete, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app import clock
from app.database import server_time
from app.database.column_types import UTCDateTime
from app.extensions import db
from app.jobs import wakeup
from app.models.job import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Job

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
BACKOFF_JITTER = 0.1
ERROR_TEXT_LIMIT = 2000
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_LEASE_SECONDS = 300
# Losing a race costs one more round; a few rounds are plenty before giving up for now.
RACE_ROUNDS = 5
_RACED = object()

_jitter = random.Random()


@dataclass(frozen=True)
class ClaimedJob:
    """A snapshot of a job as claimed: safe to use after the handler commits or rolls back.

    `claimed_by` and `attempts` identify this claim; `complete` and `fail` act only while
    the job still carries both, so a worker whose lease was taken over changes nothing.
    """

    id: int
    kind: str
    key: str
    payload: dict
    attempts: int
    claimed_by: str
    lease_expires_at: datetime


# -- enqueue ---------------------------------------------------------------------------


def enqueue(kind, key, *, payload=None, run_at=None):
    """Queue work for (kind, key) unless the same work is already pending; return the pending job.

    When a pending job exists, nothing is added: its payload gains the new payload's keys
    (a key set to a true value stays set, so a full sync asked for is never downgraded)
    and its run time stays, so a retry waiting out throttling is not pulled forward.
    Joins the caller's transaction: the job becomes visible when the caller commits.
    """
    key = str(key)
    payload = dict(payload or {})
    now = clock.utcnow()
    run_at = run_at or now
    if run_at <= now:
        wakeup.mark_jobs_queued(db.session())
    for _ in range(RACE_ROUNDS):
        inserted_id = _insert_unless_pending(kind, key, payload, run_at, now)
        if inserted_id is not None:
            return db.session.get(Job, inserted_id)
        pending = _pending_job(kind, key)
        # None: the pending job was claimed in between, so a new one may now be queued.
        if pending is not None and _merge_payload_into(pending, payload):
            return pending
    raise RuntimeError(f"could not enqueue {kind}:{key}: the pending job kept changing")


def ensure_queued(kind, keys):
    """Queue a due job without payload for each key that has none pending; one statement.

    The webhook's path: a key that has a pending job already needs nothing more, since
    that job has not started and will see whatever the notification announced. Joins the
    caller's transaction.
    """
    keys = sorted({str(key) for key in keys})
    if not keys:
        return
    now = clock.utcnow()
    rows = [_row(kind, key, {}, now, now) for key in keys]
    db.session.execute(_INSERT_UNLESS_PENDING, rows)
    wakeup.mark_jobs_queued(db.session())


def _insert_unless_pending(kind, key, payload, run_at, now):
    row = _row(kind, key, payload, run_at, now)
    return db.session.execute(_INSERT_UNLESS_PENDING_RETURNING_ID, row).scalar_one_or_none()


def _row(kind, key, payload, run_at, now):
    return {
        "kind": kind,
        "key": key,
        "payload": _dump(payload),
        "state": JOB_QUEUED,
        "run_at": run_at,
        "attempts": 0,
        "created_at": now,
    }


# Written as SQL because SQLAlchemy cannot cache a compiled ON CONFLICT clause: built as
# an expression it would be compiled afresh for every notification. PostgreSQL and SQLite
# spell the partial-index conflict target the same way.
_INSERT_UNLESS_PENDING = text(
    "INSERT INTO jobs (kind, key, payload, state, run_at, attempts, created_at) "
    "VALUES (:kind, :key, :payload, :state, :run_at, :attempts, :created_at) "
    f"ON CONFLICT (kind, key) WHERE state = '{JOB_QUEUED}' DO NOTHING"
).bindparams(bindparam("run_at", type_=UTCDateTime()), bindparam("created_at", type_=UTCDateTime()))
_INSERT_UNLESS_PENDING_RETURNING_ID = text(f"{_INSERT_UNLESS_PENDING.text} RETURNING id").bindparams(
    bindparam("run_at", type_=UTCDateTime()), bindparam("created_at", type_=UTCDateTime())
)


def _pending_job(kind, key):
    query = select(Job).where(Job.kind == kind, Job.key == key, Job.state == JOB_QUEUED)
    return db.session.scalar(query.execution_options(populate_existing=True))


def _merge_payload_into(pending, payload, **changes):
    """Update the pending job only if nobody changed or claimed it since it was read."""
    merged = merge_payloads(pending.payload, payload)
    if merged == pending.payload and not changes:
        return True
    result = db.session.execute(
        update(Job)
        .where(
            Job.id == pending.id,
            Job.state == JOB_QUEUED,
            Job.attempts == pending.attempts,
            Job.payload_json == pending.payload_json,
        )
        .values(payload_json=_dump(merged), **changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    db.session.refresh(pending)
    return True


def merge_payloads(existing, new):
    """Combine two payloads of coalesced jobs: true values win, false ones only fill gaps."""
    merged = dict(existing)
    for name, value in new.items():
        if value or name not in merged:
            merged[name] = value
    return merged


# -- claim -----------------------------------------------------------------------------


def claim(worker_id, kinds=None, *, now=None):
    """Take the next due job (oldest `run_at` first) for `worker_id`, or return None.

    Due means queued with `run_at` passed and no running job of the same key, or running
    with an expired lease (its worker went away: it runs again). The job becomes
    `running` with a fresh lease and one more attempt. `kinds` limits the kinds taken, so
    a process never takes work it has no handler for. Commits.
    """
    now = now or clock.utcnow()
    lease_now = server_time.database_now()
    passed_over = set()
    for _ in range(RACE_ROUNDS):
        candidate = db.session.scalar(_candidate_query(kinds, now, lease_now, passed_over))
        if candidate is None:
            db.session.commit()
            return None
        passed_over.add(candidate.id)
        if candidate.state == JOB_RUNNING and candidate.attempts >= max_attempts():
            _park_abandoned(candidate, now, lease_now)
            continue
        claimed = _take(candidate, worker_id, now, lease_now)
        if claimed is not None:
            return claimed
    return None


def _candidate_query(kinds, now, lease_now, passed_over):
    running = aliased(Job)
    key_is_running = exists().where(running.kind == Job.kind, running.key == Job.key, running.state == JOB_RUNNING)
    due = and_(Job.state == JOB_QUEUED, Job.run_at <= now, ~key_is_running)
    abandoned = and_(Job.state == JOB_RUNNING, Job.lease_expires_at <= lease_now)
    query = select(Job).where(or_(due, abandoned)).order_by(Job.run_at, Job.id).limit(1)
    if kinds is not None:
        query = query.where(Job.kind.in_(list(kinds)))
    if passed_over:
        query = query.where(Job.id.not_in(passed_over))
    if _dialect() == "postgresql":
        # Claimants skip each other's rows instead of queueing behind them.
        query = query.with_for_update(skip_locked=True, of=Job)
    return query.execution_options(populate_existing=True)


def _take(candidate, worker_id, now, lease_now):
    """Mark the candidate running, provided it is still exactly as it was read."""
    seen = candidate  # read only before the commit below, which expires it
    abandoned = seen.state == JOB_RUNNING
    lease_until = lease_now + timedelta(seconds=lease_seconds())
    statement = update(Job).where(Job.id == seen.id, Job.state == seen.state, Job.attempts == seen.attempts)
    if abandoned:
        statement = statement.where(Job.lease_expires_at <= lease_now)
    else:
        statement = statement.where(Job.run_at <= now)
    statement = statement.values(
        state=JOB_RUNNING,
        attempts=Job.attempts + 1,
        claimed_by=worker_id,
        claimed_at=now,
        lease_expires_at=lease_until,
    ).execution_options(synchronize_session=False)
    claimed = ClaimedJob(
        id=seen.id,
        kind=seen.kind,
        key=seen.key,
        payload=seen.payload,
        attempts=seen.attempts + 1,
        claimed_by=worker_id,
        lease_expires_at=lease_until,
    )
    try:
        won = db.session.execute(statement).rowcount == 1
    except IntegrityError:
        # Another claimant started a job of the same key an instant ago.
        won = False
    if not won:
        db.session.rollback()
        return None
    db.session.commit()
    if abandoned:
        log.warning("Job %s %s:%s: its worker went away; running it again", claimed.id, claimed.kind, claimed.key)
    return claimed


def _park_abandoned(candidate, now, lease_now):
    result = db.session.execute(
        update(Job)
        .where(
            Job.id == candidate.id,
            Job.state == JOB_RUNNING,
            Job.attempts == candidate.attempts,
            Job.lease_expires_at <= lease_now,
        )
        .values(
            state=JOB_FAILED,
            failed_at=now,
            lease_expires_at=None,
            last_error=f"Its worker stopped without finishing it, {candidate.attempts} times.",
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        _forget_older_failures(candidate.kind, candidate.key, candidate.id)
        db.session.commit()
        log.error("Job %s %s:%s parked: its worker kept going away", candidate.id, candidate.kind, candidate.key)
    else:
        db.session.rollback()


# -- outcome ---------------------------------------------------------------------------


def complete(job):
    """Record a successful run: the job is deleted, with any parked failure of its key.

    The handler's own uncommitted changes are committed in the same transaction. Returns
    False when the job's lease had been taken over meanwhile (the other run stays).
    """
    owned = db.session.execute(delete(Job).where(_still_ours(job)).execution_options(synchronize_session=False))
    if owned.rowcount == 1:
        # The key works again: an earlier parked failure no longer describes its state.
        _forget_older_failures(job.kind, job.key, job.id)
    else:
        log.warning("Job %s %s:%s finished after its lease was taken over", job.id, job.kind, job.key)
    db.session.commit()
    return owned.rowcount == 1


def fail(job, error, retry_after=None, transient=None, *, now=None):
    """Record a failed run; return the job's new state (`queued` or `failed`), or None if no longer ours.

    Uncommitted work of the failed attempt is rolled back first. `transient` and
    `retry_after` default to the error's own ``is_transient`` and ``retry_after``
    attributes. A transient failure is retried after `backoff`; when a pending job of
    the same key is already waiting, the retry folds into it (it keeps the attempt count,
    the later run time and both payloads) so coalescing holds. A non-transient failure,
    or one on the last allowed attempt, is parked as `failed` with the error text kept.
    """
    db.session.rollback()
    now = now or clock.utcnow()
    message = describe_error(error)
    if transient is None:
        transient = getattr(error, "is_transient", True)
    if retry_after is None:
        retry_after = getattr(error, "retry_after", None)
    if not transient or job.attempts >= max_attempts():
        return _park(job, message, now)
    retry_at = now + backoff(job.attempts, retry_after)
    for _ in range(RACE_ROUNDS):
        try:
            outcome = _requeue(job, message, retry_at)
        except IntegrityError:
            outcome = _RACED
        if outcome is _RACED:
            # A pending job appeared, or changed, between our read and our write: look again.
            db.session.rollback()
            continue
        if outcome:
            db.session.commit()
            return JOB_QUEUED
        db.session.rollback()
        log.warning("Job %s %s:%s failed after its lease was taken over", job.id, job.kind, job.key)
        return None
    return None


def _requeue(job, message, retry_at):
    """Put a failed job back in the queue, or fold it into the job pending behind it.

    Returns True when done, False when the job is no longer ours, `_RACED` to try again.
    """
    pending = _pending_job(job.kind, job.key)
    if pending is None:
        result = db.session.execute(
            update(Job)
            .where(_still_ours(job))
            .values(state=JOB_QUEUED, run_at=retry_at, lease_expires_at=None, last_error=message)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1
    gone = db.session.execute(delete(Job).where(_still_ours(job)).execution_options(synchronize_session=False))
    if gone.rowcount != 1:
        return False
    folded = _merge_payload_into(
        pending,
        job.payload,
        attempts=max(pending.attempts, job.attempts),
        run_at=max(pending.run_at, retry_at),
        last_error=message,
    )
    return True if folded else _RACED


def _park(job, message, now):
    result = db.session.execute(
        update(Job)
        .where(_still_ours(job))
        .values(state=JOB_FAILED, failed_at=now, lease_expires_at=None, last_error=message)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        return None
    _forget_older_failures(job.kind, job.key, job.id)
    db.session.commit()
    log.error("Job %s %s:%s parked after attempt %s: %s", job.id, job.kind, job.key, job.attempts, message)
    return JOB_FAILED


def extend_lease(job):
    """Push the lease of a job still running here forward; False if it is no longer ours. Commits."""
    result = db.session.execute(
        update(Job)
        .where(_still_ours(job))
        .values(lease_expires_at=server_time.database_now() + timedelta(seconds=lease_seconds()))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def retry(job_id, *, now=None):
    """Queue a parked job again with a fresh attempt budget; return the pending job, or None.

    If the same key has a pending job already, the parked one merges into it. Commits.
    """
    now = now or clock.utcnow()
    for _ in range(RACE_ROUNDS):
        parked = db.session.scalar(
            select(Job).where(Job.id == job_id, Job.state == JOB_FAILED).execution_options(populate_existing=True)
        )
        if parked is None:
            db.session.rollback()
            return None
        try:
            pending = _pending_job(parked.kind, parked.key)
            if pending is not None:
                if not _merge_payload_into(pending, parked.payload):
                    db.session.rollback()
                    continue
                db.session.delete(parked)
                db.session.commit()
                return pending
            parked.state = JOB_QUEUED
            parked.run_at = now
            parked.attempts = 0
            parked.failed_at = None
            parked.claimed_by = None
            db.session.commit()
            return parked
        except IntegrityError:
            db.session.rollback()
    return None


def retry_all_failed(*, now=None):
    """Retry every parked job; return how many were queued again."""
    ids = db.session.scalars(select(Job.id).where(Job.state == JOB_FAILED).order_by(Job.id)).all()
    return sum(1 for job_id in ids if retry(job_id, now=now) is not None)


def _still_ours(job):
    return and_(
        Job.id == job.id,
        Job.state == JOB_RUNNING,
        Job.claimed_by == job.claimed_by,
        Job.attempts == job.attempts,
    )


def _forget_older_failures(kind, key, keep_id):
    """One parked failure per key is enough; a key failing every half hour would pile up rows."""
    db.session.execute(
        delete(Job)
        .where(Job.kind == kind, Job.key == key, Job.state == JOB_FAILED, Job.id != keep_id)
        .execution_options(synchronize_session=False)
    )


# -- policy ----------------------------------------------------------------------------


def backoff(attempts, retry_after=None):
    """The wait before the next attempt after `attempts` failed ones.

    Doubles from 30 s up to an hour, never shorter than the server's Retry-After, with up
    to 10 % jitter so jobs throttled together do not come back together.
    """
    seconds = min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    if retry_after:
        seconds = max(seconds, float(retry_after))
    return timedelta(seconds=seconds * (1 + _jitter.uniform(0, BACKOFF_JITTER)))


def describe_error(error):
    """The text kept on a job: the error's type and its own message, nothing more."""
    name = type(error).__name__ if isinstance(error, BaseException) else "Error"
    detail = str(error).strip()
    message = f"{name}: {detail}" if detail else name
    if len(message) > ERROR_TEXT_LIMIT:
        message = message[: ERROR_TEXT_LIMIT - 1] + "…"
    return message


def max_attempts():
    return int(current_app.config.get("JOB_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def lease_seconds():
    return float(current_app.config.get("JOB_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))


# -- portal queries ----------------------------------------------------------------------


def queue_depth(kind=None):
    """How many jobs are pending: due now or waiting for a retry."""
    query = select(func.count()).select_from(Job).where(Job.state == JOB_QUEUED)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return db.session.scalar(query)


def state_counts(kind=None, *, now=None):
    """Counts per situation: `due`, `waiting` (for a retry or a later run), `running`, `failed`."""
    now = now or clock.utcnow()
    situation = case(
        (and_(Job.state == JOB_QUEUED, Job.run_at <= now), "due"),
        (Job.state == JOB_QUEUED, "waiting"),
        else_=Job.state,
    )
    query = select(situation, func.count()).group_by(situation)
    if kind is not None:
        query = query.where(Job.kind == kind)
    counts = {"due": 0, "waiting": 0, JOB_RUNNING: 0, JOB_FAILED: 0}
    counts.update({name: number for name, number in db.session.execute(query)})
    return counts


def oldest_queued_age(kind=None, *, now=None):
    """How long the longest-waiting due job has been due, or None when nothing is due."""
    now = now or clock.utcnow()
    query = select(func.min(Job.run_at)).where(Job.state == JOB_QUEUED, Job.run_at <= now)
    if kind is not None:
        query = query.where(Job.kind == kind)
    oldest = db.session.scalar(query)
    return None if oldest is None else now - oldest


def failed_jobs(kind=None, keys=None, *, limit=100):
    """Parked jobs, newest failure first; `keys` narrows them, e.g. to one integration's links."""
    query = select(Job).where(Job.state == JOB_FAILED).order_by(Job.failed_at.desc(), Job.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if keys is not None:
        query = query.where(Job.key.in_([str(key) for key in keys]))
    return db.session.scalars(query).all()


def list_jobs(state=None, *, limit=100):
    """Jobs in one state (or all), in the order they are due."""
    query = select(Job).order_by(Job.run_at, Job.id).limit(limit)
    if state is not None:
        query = query.where(Job.state == state)
    return db.session.scalars(query).all()


def _dump(payload):
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _dialect():
    return db.session.get_bind().dialect.name
