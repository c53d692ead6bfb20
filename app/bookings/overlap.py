"""The overlap rule: two bookings of one object clash when both statuses block the object
and their times overlap. Times are half open, so a booking that ends when the next starts
does not clash with it.

The rule has two forms. `find_overlap` asks the database about one booking, which is
what a save from the portal or the API needs. `Occupancy` answers the same question for
the many appointments of one delta page from memory: the blocking bookings near the
page's times are loaded in one query and followed while the page's decisions create,
move and cancel, because a query per appointment would make a busy room's first sync
quadratic. Both select the blocking bookings through `blocking_bookings`.
"""

from bisect import bisect_left, insort
from datetime import timedelta
from itertools import count

from app.database.bulk import json_rows, json_values, on_postgresql
from app.database.column_types import UTCDateTime
from app.extensions import db
from app.models import Booking, BookingStatus


def blocking_bookings(object_id, start, end, *columns):
    """Bookings of the object whose status blocks it and whose times overlap [start, end)."""
    return (
        db.select(*(columns or (Booking,)))
        .join(Booking.status)
        .where(
            Booking.object_id == object_id,
            BookingStatus.blocks_object.is_(True),
            Booking.start_at < end,
            Booking.end_at > start,
        )
    )


def find_overlap(booking):
    """The earliest booking that clashes with `booking` (saved or not), or None."""
    status = booking.status or db.session.get(BookingStatus, booking.status_id)
    if status is not None and not status.blocks_object:
        return None
    query = blocking_bookings(booking.object_id, booking.start_at, booking.end_at).order_by(Booking.start_at).limit(1)
    if booking.id is not None:
        query = query.where(Booking.id != booking.id)
    # The booking under validation may already sit in the session with invalid values:
    # flushing it here would write it before the caller decided to keep it.
    with db.session.no_autoflush:
        return db.session.scalars(query).first()


class Spans:
    """Keyed time spans, half open: spans that only touch do not overlap."""

    def __init__(self):
        self._by_key = {}
        self._ordered = []  # (start, serial, end, key): the serial keeps keys out of comparisons
        self._serial = count()
        # Never shrinks: it only bounds how far back an overlapping span can start.
        self._longest = timedelta(0)

    def put(self, key, start, end):
        self.drop(key)
        entry = (start, next(self._serial), end, key)
        self._by_key[key] = entry
        insort(self._ordered, entry)
        self._longest = max(self._longest, end - start)

    def drop(self, key):
        entry = self._by_key.pop(key, None)
        if entry is not None:
            self._ordered.remove(entry)

    def overlapping(self, start, end):
        """Keys of the spans that overlap [start, end), latest start first."""
        earliest = start - self._longest
        for index in range(bisect_left(self._ordered, (end,)) - 1, -1, -1):
            span_start, _, span_end, key = self._ordered[index]
            if span_start <= earliest:
                return
            if span_end > start:
                yield key


class Occupancy:
    """Blocking bookings of one object that overlap the spans a page will check.

    `clashes` answers only for those spans; for any other the caller asks the database.
    """

    def __init__(self, object_id, spans, statuses):
        self.object_id = object_id
        self.statuses = statuses
        self.checkable = frozenset(spans)
        self.taken = Spans()
        if self.checkable:
            self._load()

    def _load(self):
        wanted = Spans()
        for number, (start, end) in enumerate(self.checkable):
            wanted.put(number, start, end)
        query = blocking_bookings(
            self.object_id,
            min(start for start, _ in self.checkable),
            max(end for _, end in self.checkable),
            Booking.id,
            Booking.start_at,
            Booking.end_at,
        )
        parameters = {}
        if on_postgresql():
            # The driver would hold the whole answer in memory: let the server keep only
            # the bookings next to one of the spans, however many lie between them.
            spans = [{"start_at": start, "end_at": end} for start, end in self.checkable]
            query, parameters = query.where(_near_spans()), {"spans": json_values(spans)}
        # Rows arrive one by one; only bookings next to one of the spans are kept.
        for booking_id, start, end in db.session.execute(query, parameters):
            if next(wanted.overlapping(start, end), None) is not None:
                self.taken.put(booking_id, start, end)

    def note(self, booking):
        """Follow a booking this page created or changed."""
        self.taken.drop(booking)
        if booking.id is not None:
            self.taken.drop(booking.id)
        if booking.object_id != self.object_id or booking.start_at is None or booking.end_at is None:
            return
        status = self.statuses.get(booking.status_id)
        if status is None or status.blocks_object:
            # Not yet written, it has no id: the object itself is its key until then.
            self.taken.put(booking.id if booking.id is not None else booking, booking.start_at, booking.end_at)

    def clashes(self, booking_id, start, end):
        """Whether [start, end) overlaps a blocking booking other than `booking_id`; None when unknown here."""
        if (start, end) not in self.checkable:
            return None
        for key in self.taken.overlapping(start, end):
            key_id = key if isinstance(key, int) else key.id
            if booking_id is None or key_id != booking_id:
                return True
        return False


def _near_spans():
    spans = json_rows("spans", [("start_at", UTCDateTime()), ("end_at", UTCDateTime())])
    return (
        db.select(spans.c.start_at).where(Booking.start_at < spans.c.end_at, Booking.end_at > spans.c.start_at).exists()
    )
