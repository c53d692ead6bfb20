"""Database answers for the decision rules, read one delta page at a time; nothing here writes.

Everything a page's decisions ask is read up front in a few queries: bookings by event
id and by the booking id in the subject, customers by organiser address, and the taken
times of the link's object. Bookings created or changed earlier in the same page are
remembered, because Graph may return the same event twice in one response. A question
the page did not prepare for is answered by a query of its own; when that answer
depends on decisions of the page not yet written, the lookup raises `PageNotWritten`
instead, and the engine writes them and decides again.
"""

from types import SimpleNamespace

from app.bookings.overlap import Occupancy
from app.bookings.validation import validate_booking
from app.extensions import db
from app.models import Booking, BookingStatus, Customer
from app.sync.decision import StoredBooking
from app.sync.queries import linked_booking_ids


def linked_event_id(booking, ires_field):
    return (booking.extra or {}).get(ires_field) or None


def statuses_of(organisation_id):
    """The organisation's statuses by id, read once per sync: plain values, which a commit does not expire."""
    rows = db.session.scalars(db.select(BookingStatus).where(BookingStatus.organisation_id == organisation_id))
    return {
        status.id: SimpleNamespace(id=status.id, name=status.name, blocks_object=status.blocks_object)
        for status in rows
    }


class PageNotWritten(Exception):
    """A lookup needs the database to hold this page's decisions so far, and it does not yet."""


class PageLookups:
    """The lookups of `decision.Lookups` for one page, kept current by `remember` and `written`."""

    def __init__(self, organisation_id, ires_field, events, statuses):
        self.organisation_id = organisation_id
        self._unwritten = False
        self.ires_field = ires_field
        self.statuses = statuses
        self.occupancy = None
        self._by_event = {}
        self._by_id = {}
        self._customers = {}
        event_ids = {event.id for event in events if event.id}
        linked_ids = linked_booking_ids(organisation_id, ires_field, event_ids) if event_ids else []
        if linked_ids:
            for booking in self._bookings(Booking.id.in_(linked_ids)):
                self._by_event[linked_event_id(booking, ires_field)] = booking
        subject_ids = {event.booking_id_in_subject for event in events} - {None}
        if subject_ids:
            self._by_id = {booking.id: booking for booking in self._bookings(Booking.id.in_(subject_ids))}
        emails = {event.organiser_email.lower() for event in events if event.organiser_email}
        if emails:
            self._customers = dict.fromkeys(emails)
            query = (
                db.select(Customer.email, Customer.id)
                .where(Customer.organisation_id == organisation_id, Customer.email.in_(emails))
                .order_by(Customer.id.desc())
            )
            # Lowest id wins, as one query per address would have it.
            self._customers.update(db.session.execute(query).all())

    def _bookings(self, condition):
        return db.session.scalars(db.select(Booking).where(Booking.organisation_id == self.organisation_id, condition))

    def prepare_overlaps(self, object_id, spans):
        """Load what the overlap checks of these (start, end) spans on the object will meet."""
        self.occupancy = Occupancy(object_id, spans, self.statuses)

    def written(self, created):
        """The engine wrote the page's decisions so far; `created` are the new bookings, now with ids."""
        self._unwritten = False
        if self.occupancy is not None:
            for booking in created:
                self.occupancy.note(booking)  # known by its id from now on

    def remember(self, booking):
        """Index a booking that this page just created or changed (in memory, not yet written)."""
        self._unwritten = True
        event_id = linked_event_id(booking, self.ires_field)
        if event_id:
            self._by_event[event_id] = booking
        if self.occupancy is not None:
            self.occupancy.note(booking)

    def _database_must_be_current(self):
        if self._unwritten:
            raise PageNotWritten

    def forget(self, event_id):
        self._by_event.pop(event_id, None)

    def booking_for_event(self, event_id):
        booking = self._by_event.get(event_id)
        return self.stored(booking) if booking is not None else None

    def booking_by_id(self, booking_id):
        booking = self._by_id.get(booking_id)
        if booking is None:
            # It may have been created earlier in this page.
            self._database_must_be_current()
            with db.session.no_autoflush:
                booking = db.session.get(Booking, booking_id)
        if booking is None or booking.organisation_id != self.organisation_id:
            return None
        return self.stored(booking)

    def customer_for_email(self, email):
        if email not in self._customers:
            # Customers are never changed by a sync: what the page has not written cannot matter.
            with db.session.no_autoflush:
                self._customers[email] = db.session.scalar(
                    db.select(Customer.id)
                    .where(Customer.organisation_id == self.organisation_id, Customer.email == email.lower())
                    .order_by(Customer.id)
                    .limit(1)
                )
        return self._customers[email]

    def validation_errors(self, *, booking_id, object_id, status_id, start_at, end_at):
        status = self.statuses.get(status_id)
        if self._surely_valid(booking_id, object_id, status, start_at, end_at):
            return []
        # A clash, or a span the page did not prepare: the portal's own check decides,
        # on the database as this page's decisions so far have left it.
        self._database_must_be_current()
        candidate = SimpleNamespace(
            id=booking_id, object_id=object_id, status_id=status_id, status=status, start_at=start_at, end_at=end_at
        )
        with db.session.no_autoflush:
            return [error.message for error in validate_booking(candidate)]

    def _surely_valid(self, booking_id, object_id, status, start_at, end_at):
        if start_at is None or end_at is None or end_at <= start_at:
            return False
        if status is not None and not status.blocks_object:
            return True
        occupancy = self.occupancy
        if occupancy is None or occupancy.object_id != object_id:
            return False
        return occupancy.clashes(booking_id, start_at, end_at) is False

    def stored(self, booking):
        if booking.id is None:
            # Created earlier in this page and not written yet: the rules need its id.
            raise PageNotWritten
        return StoredBooking(
            id=booking.id,
            status_id=booking.status_id,
            status_name=self.statuses[booking.status_id].name,
            start_at=booking.start_at,
            end_at=booking.end_at,
            channel=booking.channel,
            remark=booking.remark,
            event_id=linked_event_id(booking, self.ires_field),
            object_id=booking.object_id,
        )
