"""Wakes this process's idle job threads as soon as it has committed new jobs.

Job threads that find nothing to do poll the queue every JOB_POLL_SECONDS. A job queued
in this process (a webhook notification, a booking saved in the portal) need not wait for
that: once the transaction that queued it commits, `nudge` wakes the waiting threads at
once. Jobs queued by other processes or hosts are still found by polling. A nudge that
arrives between a thread's empty claim and its wait is not lost: the thread compares the
nudge counter it read before claiming.
"""

import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

_JOBS_QUEUED = "ireserve.jobs_queued"

_condition = threading.Condition()
_nudges = 0


def nudges():
    """The number of nudges so far; read it before claiming, pass it to `wait`."""
    return _nudges


def wait(seen, timeout):
    """Sleep up to `timeout` seconds unless a nudge came after `seen` (or comes meanwhile)."""
    with _condition:
        if _nudges == seen:
            _condition.wait(timeout)


def nudge():
    """Wake every thread waiting in `wait`. Not for signal handlers: it takes a lock."""
    global _nudges
    with _condition:
        _nudges += 1
        _condition.notify_all()


def mark_jobs_queued(session):
    """Remember that `session`'s transaction queued a job, to nudge once it commits."""
    session.info[_JOBS_QUEUED] = True


@event.listens_for(Session, "after_commit")
def _nudge_after_commit(session):
    if session.info.pop(_JOBS_QUEUED, False):
        nudge()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session):
    # A needless nudge after a rolled-back savepoint costs one empty claim; a lost one, a poll interval.
    session.info.pop(_JOBS_QUEUED, None)
