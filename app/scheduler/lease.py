"""The scheduler lease: one row naming the process that runs the periodic jobs.

Every process may try to take it; one conditional UPDATE (or, the very first time, an
INSERT that does nothing on conflict) decides, and its row count tells the caller whether
it won. Nobody reads first and writes after, so two processes never both believe they
hold it. A holder renews well within the TTL; if it dies, another takes over as soon as
the TTL has passed, without anyone unlocking anything by hand.

Times are taken from the **database clock**: hosts taking turns compare against one clock,
so a host whose own clock runs ahead cannot steal a live lease. The functions that
compare times accept `now` so tests can drive the clock.
"""

import os
import secrets
import socket
from datetime import timedelta

from flask import current_app
from sqlalchemy import case, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.database import server_time
from app.database.column_types import UTCDateTime
from app.extensions import db
from app.models.job import SchedulerLease

LEASE_NAME = "scheduler"
DEFAULT_TTL_SECONDS = 60


def make_holder_id():
    """A name for this process that the portal can show: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def acquire(holder_id, *, now=None, ttl=None, name=LEASE_NAME):
    """Take or keep the lease: succeeds when it is free, expired, or held by `holder_id` already.

    Extends the lease to `now + ttl` and records `now` as the holder's last tick. Commits.
    """
    now = now or server_time.database_now()
    expires_at = now + _ttl(ttl)
    at_now = literal(now, UTCDateTime())
    taken = db.session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == name,
            or_(
                SchedulerLease.holder.is_(None),
                SchedulerLease.holder == holder_id,
                SchedulerLease.expires_at.is_(None),
                SchedulerLease.expires_at <= now,
            ),
        )
        .values(
            holder=holder_id,
            # A holder renewing keeps its original start; a new holder starts now.
            acquired_at=case((SchedulerLease.holder == holder_id, SchedulerLease.acquired_at), else_=at_now),
            expires_at=expires_at,
            last_tick_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    won = taken.rowcount == 1
    if not won:
        won = _create(name, holder_id, now, expires_at)
    db.session.commit()
    return won


def _create(name, holder_id, now, expires_at):
    """The first acquire ever: insert the row, unless a rival inserted it a moment earlier."""
    insert = postgresql_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    created = db.session.execute(
        insert(SchedulerLease)
        .values(name=name, holder=holder_id, acquired_at=now, expires_at=expires_at, last_tick_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(SchedulerLease.name)
    )
    # RETURNING rather than rowcount: an ORM-level INSERT does not report a row count everywhere.
    return created.scalar_one_or_none() is not None


def renew(holder_id, *, now=None, ttl=None, name=LEASE_NAME):
    """Extend a lease `holder_id` still holds; False once it has expired or changed hands. Commits."""
    now = now or server_time.database_now()
    renewed = db.session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder_id, SchedulerLease.expires_at > now)
        .values(expires_at=now + _ttl(ttl), last_tick_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return renewed.rowcount == 1


def release(holder_id, *, name=LEASE_NAME):
    """Give the lease up so a successor need not wait for the TTL; no-op if not ours. Commits."""
    released = db.session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder_id)
        .values(holder=None, expires_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return released.rowcount == 1


def current(name=LEASE_NAME):
    """The lease row for the portal (holder, acquired_at, expires_at, last_tick_at), or None."""
    query = select(SchedulerLease).where(SchedulerLease.name == name)
    return db.session.scalar(query.execution_options(populate_existing=True))


def is_held(lease_row, *, now=None):
    """Whether the row names a holder whose lease has not expired."""
    if lease_row is None or lease_row.holder is None or lease_row.expires_at is None:
        return False
    return lease_row.expires_at > (now or server_time.database_now())


def _ttl(ttl):
    if ttl is None:
        ttl = current_app.config.get("SCHEDULER_LEASE_SECONDS", DEFAULT_TTL_SECONDS)
    return ttl if isinstance(ttl, timedelta) else timedelta(seconds=float(ttl))
