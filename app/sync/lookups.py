"""Database answers for the decision rules, loaded one delta page at a time.

A page's event ids are looked up in one query instead of one per event, and bookings
created earlier in the same page are remembered, because Graph may return the same
event twice in one response.
"""

from types import SimpleNamespace

from app.booking_rules import validate_booking
from app.extensions import db
from app.models import Booking, BookingStatus, Customer
from app.sync.decision import StoredBooking


def linked_event_id(booking, ires_field):
    return (booking.extra or {}).get(ires_field) or None


def event_id_column(ires_field):
    return Booking.extra[ires_field].as_string()


def statuses_of(organisation_id):
    """The organisation's statuses by id, loaded once per sync rather than per event."""
    rows = db.session.scalars(db.select(BookingStatus).where(BookingStatus.organisation_id == organisation_id))
    return {status.id: status for status in rows}


class PageLookups:
    def __init__(self, organisation_id, ires_field, event_ids, statuses):
        self.organisation_id = organisation_id
        self.ires_field = ires_field
        self.statuses = statuses
        self._by_event = {}
        self._customers = {}
        ids = [i for i in set(event_ids) if i]
        if ids:
            rows = db.session.scalars(
                db.select(Booking)
                .where(Booking.organisation_id == organisation_id, event_id_column(ires_field).in_(ids))
            )
            for booking in rows:
                self._by_event[linked_event_id(booking, ires_field)] = booking

    def remember(self, booking):
        """Index a booking that this page just created or linked."""
        event_id = linked_event_id(booking, self.ires_field)
        if event_id:
            self._by_event[event_id] = booking

    def forget(self, event_id):
        self._by_event.pop(event_id, None)

    def booking_for_event(self, event_id):
        booking = self._by_event.get(event_id)
        return self.stored(booking) if booking is not None else None

    def booking_by_id(self, booking_id):
        booking = db.session.get(Booking, booking_id)
        if booking is None or booking.organisation_id != self.organisation_id:
            return None
        return self.stored(booking)

    def customer_for_email(self, email):
        if email not in self._customers:
            self._customers[email] = db.session.scalar(
                db.select(Customer.id)
                .where(Customer.organisation_id == self.organisation_id, Customer.email == email.lower())
                .order_by(Customer.id)
                .limit(1)
            )
        return self._customers[email]

    def validation_errors(self, *, booking_id, object_id, status_id, start_at, end_at):
        candidate = SimpleNamespace(
            id=booking_id,
            object_id=object_id,
            status_id=status_id,
            status=self.statuses.get(status_id),
            start_at=start_at,
            end_at=end_at,
        )
        return [error.message for error in validate_booking(candidate)]

    def stored(self, booking):
        return StoredBooking(
            id=booking.id,
            status_id=booking.status_id,
            status_name=self.statuses[booking.status_id].name,
            start_at=booking.start_at,
            end_at=booking.end_at,
            channel=booking.channel,
            remark=booking.remark,
            event_id=linked_event_id(booking, self.ires_field),
        )
