"""A lock per bookable object, held from before a booking's overlap check until its commit.

The overlap rule is checked with a query before the booking is written, so two saves at
the same moment could both find the object free and both write. Whoever holds an
object's lock checks and writes alone; the next one waits and then sees the first one's
booking.
"""

from sqlalchemy import text

from app.database.sqlite import begin_writing_promptly

# Advisory locks have one key space per database: this first half of the key keeps the
# objects' locks apart from any other use of them.
BOOKING_OBJECT_LOCKS = 0x4F424A  # "OBJ"

_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:object_id AS integer))")


def lock_objects_for_booking(session, *object_ids):
    """Hold the booking lock of each object until `session`'s transaction ends.

    PostgreSQL: a transaction-scoped advisory lock per object, lowest id first so two
    transactions that need the same objects never wait for each other in a circle.
    SQLite has one write lock for the whole database: the transaction begins with it
    taken, which serialises every object at once.
    """
    if session.get_bind().dialect.name == "sqlite":
        begin_writing_promptly(session)
        return
    for object_id in sorted(set(object_ids) - {None}):
        session.execute(_ADVISORY_LOCK, {"space": BOOKING_OBJECT_LOCKS, "object_id": object_id})
