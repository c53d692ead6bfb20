"""Carrying out the sync's decisions: new bookings and log lines are written a page at a time.

The ORM would insert them one row per statement and track every object it created; a
first sync of a busy room creates thousands. New bookings and log lines are therefore
kept as plain values and inserted together when the page is done, or earlier when a
question about the page needs them in the database. Changes to existing bookings, rare
in comparison, go through the ORM.
"""

from dataclasses import dataclass, field
from datetime import datetime

from app import clock
from app.database.bulk import insert_rows
from app.extensions import db
from app.metrics import hourly
from app.models import Booking, SyncLogEntry
from app.sync.decision import CREATE, REFUSE, SKIP
from app.sync.queries import event_id_column


@dataclass(eq=False)
class NewBooking:
    """A booking created by this sync, with what the rules and checks read of a booking."""

    organisation_id: int
    object_id: int
    status_id: int
    customer_id: int | None
    start_at: datetime
    end_at: datetime
    remark: str
    channel: str
    extra: dict = field(default_factory=dict)
    id: int | None = None  # known once written


class SyncWrites:
    def __init__(self, organisation_id, ires_field, integration_id, link_id):
        self.organisation_id = organisation_id
        self.ires_field = ires_field
        self.integration_id = integration_id
        self.link_id = link_id
        self._bookings = []
        self._log = []
        self._booking_counts = hourly.PendingBookingCounts(integration_id)

    def apply(self, decision):
        """Carry out one decision; return the booking it created or changed."""
        self._booking_counts.add(decision.action)
        if decision.action == CREATE:
            booking = NewBooking(
                organisation_id=self.organisation_id, extra={self.ires_field: decision.event_id}, **decision.changes
            )
            self._bookings.append(booking)
            return booking
        if decision.booking_id is None or decision.action == SKIP and not decision.link_event:
            return None
        booking = db.session.get(Booking, decision.booking_id)
        for name, value in decision.changes.items():
            setattr(booking, name, value)
        if decision.link_event:
            booking.extra[self.ires_field] = decision.event_id
        if decision.unlink_event:
            booking.extra.pop(self.ires_field, None)
        return booking

    def log(self, action, reason, *, event_id=None, booking=None, booking_id=None, is_error=False):
        self._log.append(
            {
                "booking": booking,
                "booking_id": booking_id,
                "event_id": event_id,
                "action": action,
                "reason": reason,
                "is_error": is_error or action == REFUSE,
            }
        )

    def discard(self):
        """Forget what is pending: the transaction it belonged to was rolled back."""
        self._bookings, self._log = [], []
        self._booking_counts.discard()

    def write(self):
        """Write everything pending; return the new bookings, which now have their ids."""
        db.session.flush()
        written, self._bookings = self._bookings, []
        if written:
            self._insert_bookings(written)
        if self._log:
            self._insert_log()
        self._booking_counts.write()
        return written

    def _insert_bookings(self, bookings):
        now = clock.utcnow()
        rows = [
            {
                "organisation_id": booking.organisation_id,
                "object_id": booking.object_id,
                "status_id": booking.status_id,
                "customer_id": booking.customer_id,
                "start_at": booking.start_at,
                "end_at": booking.end_at,
                "remark": booking.remark,
                "channel": booking.channel,
                "extra": booking.extra,
                "created_at": now,
                "updated_at": now,
            }
            for booking in bookings
        ]
        by_event = {booking.extra[self.ires_field]: booking for booking in bookings}
        if len(by_event) < len(bookings):
            # Ids are matched by event id below; a page never creates two bookings for one
            # event, but should it, one statement per row keeps them apart.
            for booking, row in zip(bookings, rows, strict=True):
                [(booking.id,)] = insert_rows(Booking.__table__, [row], returning=[Booking.id])
            return
        # Ids come back in no promised order.
        returned = insert_rows(Booking.__table__, rows, returning=[Booking.id, event_id_column(self.ires_field)])
        for booking_id, event_id in returned:
            by_event[event_id].id = booking_id

    def _insert_log(self):
        rows, self._log = self._log, []
        for row in rows:
            booking = row.pop("booking")
            if booking is not None:
                row["booking_id"] = booking.id
            row.update(organisation_id=self.organisation_id, integration_id=self.integration_id, link_id=self.link_id)
        insert_rows(SyncLogEntry.__table__, rows)
