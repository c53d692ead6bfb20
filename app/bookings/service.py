"""Saving a booking changed by a person or another system: the one path that triggers outbound.

The inbound sync writes bookings directly and never through here, so a change that came
from Outlook is never sent back to it.
"""

from sqlalchemy import inspect

from app.bookings.validation import validate_booking
from app.database.booking_locks import lock_objects_for_booking
from app.extensions import db
from app.outbound.trigger import booking_changed


def save_booking(booking):
    """Validate `booking`, store it and queue it for Outlook; return FieldErrors, empty on success.

    The check and the write happen under the lock of the booking's object (and of the
    object it leaves), so of two overlapping bookings saved at the same moment one is
    refused. On errors nothing is written: the session is rolled back, so a booking that
    was loaded and edited goes back to what the database holds.
    """
    lock_objects_for_booking(db.session, booking.object_id, *_objects_left(booking))
    errors = validate_booking(booking)
    if errors:
        db.session.rollback()
        return errors
    if booking.id is None:
        db.session.add(booking)
    db.session.flush()
    booking_changed(booking)
    db.session.commit()
    return []


def _objects_left(booking):
    """The object a stored booking is being moved away from, if it is."""
    state = inspect(booking)
    if not state.persistent:
        return []
    return state.attrs.object_id.history.deleted
