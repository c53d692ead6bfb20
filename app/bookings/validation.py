"""Checking a booking before it is saved: shared by the portal, the API and the inbound sync."""

from dataclasses import dataclass

from app.bookings.overlap import find_overlap
from app.clock import utc_to_local
from app.extensions import db
from app.models import Organisation

OVERLAP = "overlap"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    code: str | None = None  # lets callers tell an overlap (a conflict) from invalid input


def validate_booking(booking):
    """Return the problems with `booking` (saved or not) as FieldErrors; empty when valid.

    The checks: end after start, and no overlap with another booking of the same object
    whose status occupies the object. Bookings that touch (one ends when the next starts)
    do not overlap.
    """
    errors = []
    if booking.start_at is None:
        errors.append(FieldError("start_at", "Enter a start time."))
    if booking.end_at is None:
        errors.append(FieldError("end_at", "Enter an end time."))
    if errors:
        return errors
    if booking.end_at <= booking.start_at:
        return [FieldError("end_at", "The end must be after the start.")]
    clash = find_overlap(booking)
    if clash is not None:
        errors.append(
            FieldError(
                "start_at",
                f"Overlaps booking {clash.id} ({clash.status.name}) on {clash.object.name} {_period(clash)}.",
                OVERLAP,
            )
        )
    return errors


def _period(booking):
    """The booking's period in its organisation's wall-clock time, as the admin entered it."""
    zone = db.session.get(Organisation, booking.organisation_id).timezone
    start = utc_to_local(booking.start_at, zone)
    end = utc_to_local(booking.end_at, zone)
    end_format = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    return f"from {start:%Y-%m-%d %H:%M} to {end.strftime(end_format)}"
