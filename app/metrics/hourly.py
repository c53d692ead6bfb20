"""Hourly rollups of sync health: counts added to in the transaction of the work they count.

Each count is one statement, `INSERT ... SELECT ... ON CONFLICT (integration_id, hour) DO
UPDATE SET x = x + n`, so two processes counting the same hour at once both land and
neither reads the row first. It joins the caller's transaction: a sync page rolled back
takes its counts with it. The row of an hour is shared by every calendar of the
integration, so callers count just before they commit, which keeps the row locked only
for the commit itself. Rows come from the integrations table, so a count for an
integration deleted meanwhile adds nothing instead of failing on the foreign key.
"""

from collections import Counter
from datetime import UTC, timedelta

from sqlalchemy import Integer, case, delete, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app import clock
from app.database.bulk import on_postgresql
from app.database.column_types import UTCDateTime
from app.extensions import db
from app.models import Integration, SyncHourly
from app.models.sync_hourly import COUNTERS
from app.sync.decision import CANCEL, CREATE, UPDATE

#: Rollups older than this many days are deleted by the daily history prune.
RETENTION_DAYS = 35

_BOOKING_COUNTERS = {CREATE: "bookings_created", UPDATE: "bookings_updated", CANCEL: "bookings_cancelled"}


def hour_of(moment):
    """The start of the UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def count(integration_id, *, now=None, **increments):
    """Add `increments` (counter name -> number) to the integration's row of this hour."""
    count_many({integration_id: increments}, now=now)


def count_many(increments_by_integration, *, now=None):
    """Add to several integrations' rows of this hour in one statement: {integration id: {counter: n}}."""
    wanted = {
        integration_id: increments
        for integration_id, increments in increments_by_integration.items()
        if any(increments.values())
    }
    for increments in wanted.values():
        unknown = set(increments) - set(COUNTERS)
        if unknown:
            raise TypeError(f"no such hourly counter: {', '.join(sorted(unknown))}")
    if not wanted:
        return
    hour = hour_of(now or clock.utcnow())
    ids = sorted(wanted)
    values = [_per_integration({id_: wanted[id_].get(name, 0) for id_ in ids}) for name in COUNTERS]
    rows = select(Integration.id, literal(hour, UTCDateTime), *values).where(Integration.id.in_(ids))
    table = SyncHourly.__table__
    statement = (pg_insert if on_postgresql() else sqlite_insert)(table).from_select(
        ["integration_id", "hour", *COUNTERS], rows
    )
    statement = statement.on_conflict_do_update(
        index_elements=["integration_id", "hour"],
        set_={name: table.c[name] + statement.excluded[name] for name in COUNTERS},
    )
    db.session.execute(statement)


def _per_integration(numbers):
    """An SQL value that is `numbers[integration id]` on each integration's row."""
    distinct = set(numbers.values())
    if len(distinct) == 1:
        return literal(distinct.pop(), Integer)
    return case({id_: literal(n, Integer) for id_, n in numbers.items()}, value=Integration.id, else_=0)


def count_notifications(accepted_by_integration):
    """Accepted change notifications of one webhook request, {integration id: count}."""
    count_many({id_: {"notifications": n} for id_, n in accepted_by_integration.items()})


class PendingBookingCounts:
    """Bookings one sync has written but not yet committed, counted when they are."""

    def __init__(self, integration_id):
        self.integration_id = integration_id
        self._counts = Counter()

    def add(self, action):
        counter = _BOOKING_COUNTERS.get(action)
        if counter:
            self._counts[counter] += 1

    def write(self):
        """Count what is pending in the current transaction, and forget it."""
        counts, self._counts = self._counts, Counter()
        count(self.integration_id, **counts)

    def discard(self):
        self._counts = Counter()


def prune(now):
    """Delete rollups older than RETENTION_DAYS; return how many went. Joins the caller's transaction."""
    cutoff = hour_of(now) - timedelta(days=RETENTION_DAYS)
    result = db.session.execute(
        delete(SyncHourly).where(SyncHourly.hour < cutoff).execution_options(synchronize_session=False)
    )
    return result.rowcount
