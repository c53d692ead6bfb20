"""Saving a booking changed by a person or another system: the one path that triggers outbound.

The inbound sync writes bookings directly and never through here, so a change that came
from Outlook is never sent back to it.
"""

from app.bookings.validation import validate_booking
from app.extensions import db
from app.outbound.trigger import booking_changed


def save_booking(booking):
    """Validate `booking`, store it and queue it for Outlook; return FieldErrors, empty on success.

    On errors nothing is written: the session is rolled back, so a booking that was
    loaded and edited goes back to what the database holds.
    """
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
