"""The API's JSON: bookings and their parts going out, booking changes and query values coming in."""

from datetime import UTC, date, datetime, time, timedelta

from app.clock import FIRST_YEAR, LAST_YEAR, in_accepted_years, local_to_utc, skipped_time_message
from app.extensions import db
from app.models import BookableObject, BookingStatus, Customer, Integration
from app.models.integration import DEFAULT_IRES_FIELD

# Ids are 32-bit integers in the database; a larger number cannot name a row, and asking
# PostgreSQL for one would fail instead of finding nothing.
MAX_ID = 2**31 - 1
REMARK_MAX_LENGTH = 10000

BOOKING_FIELDS = ("object_id", "status_id", "customer_id", "start", "end", "remark")
# What each field says when it is required but missing; the messages match the portal's.
REQUIRED = {
    "object_id": "Choose an object.",
    "status_id": "Choose a status.",
    "start": "Enter a start time.",
    "end": "Enter an end time.",
}
# The model attribute behind each API field, and back (validation speaks model names).
ATTRIBUTES = {"start": "start_at", "end": "end_at"}
API_NAMES = {attribute: name for name, attribute in ATTRIBUTES.items()}
TIME_EXAMPLE = "2026-12-01T09:00:00Z"


# --- Out -------------------------------------------------------------------------------------


def format_time(value):
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_id_fields(organisation_id):
    """The booking fields where this organisation's integrations keep Outlook event ids."""
    names = db.session.scalars(
        db.select(Integration.ires_field).where(Integration.organisation_id == organisation_id).order_by(Integration.id)
    ).all()
    return list(dict.fromkeys([*names, DEFAULT_IRES_FIELD]))


def booking_json(booking, event_fields):
    extra = dict(booking.extra or {})
    event_id = next((extra[name] for name in event_fields if extra.get(name)), None)
    return {
        "id": booking.id,
        "object": {"id": booking.object.id, "name": booking.object.name},
        "customer": customer_json(booking.customer) if booking.customer else None,
        "status": {"id": booking.status.id, "name": booking.status.name},
        "start": format_time(booking.start_at),
        "end": format_time(booking.end_at),
        "remark": booking.remark or "",
        "channel": booking.channel,
        "outlook_event_id": event_id,
        "fields": extra,
        "created_at": format_time(booking.created_at),
        "updated_at": format_time(booking.updated_at),
    }


def object_json(row):
    return {"id": row.id, "name": row.name, "capacity": row.capacity, "active": row.active}


def customer_json(row):
    return {"id": row.id, "name": row.name, "email": row.email}


def status_json(row):
    return {"id": row.id, "name": row.name, "blocks_object": row.blocks_object, "position": row.position}


# --- In --------------------------------------------------------------------------------------


def parse_booking(payload, organisation, booking=None):
    """Check a booking body against `organisation`; return (changes, errors).

    Without `booking` the body creates one and the required fields must be there; with it
    the body changes only the fields it names. `changes` maps model attributes to new
    values, related rows included (object, status, customer), so the caller can apply them
    and save. `errors` maps API field names to what is wrong with them.
    """
    errors = {}
    for name in payload:
        if name not in BOOKING_FIELDS:
            errors[name] = f"Unknown field; a booking has {', '.join(BOOKING_FIELDS)}."
    for name, message in REQUIRED.items():
        if (booking is None or name in payload) and payload.get(name) is None:
            errors[name] = message

    changes = {}
    if "object_id" in payload and "object_id" not in errors:
        row, message = _row(BookableObject, payload["object_id"], organisation, "object")
        if row is not None and not row.active and (booking is None or booking.object_id != row.id):
            message = f"Object {row.id} ({row.name}) is not active; choose an active object."
            row = None
        _keep(changes, errors, "object_id", "object", row, message)
    if "status_id" in payload and "status_id" not in errors:
        row, message = _row(BookingStatus, payload["status_id"], organisation, "status")
        _keep(changes, errors, "status_id", "status", row, message)
    if payload.get("customer_id") is not None:
        row, message = _row(Customer, payload["customer_id"], organisation, "customer")
        _keep(changes, errors, "customer_id", "customer", row, message)
    elif "customer_id" in payload:
        changes["customer_id"], changes["customer"] = None, None
    for name in ("start", "end"):
        if name in payload and name not in errors:
            value, message = parse_time(payload[name], organisation.timezone, name)
            if message:
                errors[name] = message
            else:
                changes[ATTRIBUTES[name]] = value
    if "remark" in payload:
        value, message = _remark(payload["remark"])
        if message:
            errors["remark"] = message
        else:
            changes["remark"] = value
    return changes, errors


def parse_status_change(payload, organisation):
    errors = {name: "Unknown field; a status change has only status_id." for name in payload if name != "status_id"}
    if payload.get("status_id") is None:
        errors["status_id"] = REQUIRED["status_id"]
        return {}, errors
    changes = {}
    row, message = _row(BookingStatus, payload["status_id"], organisation, "status")
    _keep(changes, errors, "status_id", "status", row, message)
    return changes, errors


def parse_time(value, timezone_name, label):
    """An ISO 8601 date and time as aware UTC, to the second; a time without offset is local.

    The year, as written, must be one the application accepts, and a local time must be
    one the organisation's clocks show (not one they skip when going forward).
    """
    wrong = f"Enter the {label} as an ISO 8601 date and time, such as {TIME_EXAMPLE}."
    if not isinstance(value, str):
        return None, wrong
    try:
        date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return None, f"The {label} needs a time of day as well, such as {TIME_EXAMPLE}."
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None, wrong
    if not in_accepted_years(parsed):
        return None, _out_of_range(label)
    # Only a time without offset is read on the organisation's clock, so only it can fall in a gap.
    if parsed.tzinfo is None and (message := skipped_time_message(parsed, timezone_name)):
        return None, message
    return _to_utc(parsed, timezone_name, wrong)


def parse_range_bound(value, timezone_name, label, is_end):
    """A query bound: a date means that day in the organisation's time zone, end days included.

    Years outside the accepted ones are refused. Unlike a booking's times, a bound on a
    skipped local time is read with the offset before the change: it only narrows a list.
    """
    wrong = f"Enter {label} as a date (2026-12-01) or an ISO 8601 date and time ({TIME_EXAMPLE})."
    # An unencoded '+' in a query string arrives as a space: read '09:00 01:00' as '09:00+01:00'.
    candidates = [value] + ([value[::-1].replace(" ", "+", 1)[::-1]] if " " in value else [])
    for candidate in candidates:
        try:
            day = date.fromisoformat(candidate)
        except ValueError:
            pass
        else:
            if not in_accepted_years(day):
                return None, _out_of_range(label)
            midnight = datetime.combine(day + timedelta(days=1) if is_end else day, time.min)
            return _to_utc(midnight, timezone_name, wrong)
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if not in_accepted_years(parsed):
            return None, _out_of_range(label)
        return _to_utc(parsed, timezone_name, wrong)
    return None, wrong


def parse_int(value, label, minimum, maximum):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None, f"Enter {label} as a whole number."
    if not minimum <= number <= maximum:
        return None, f"Enter {label} between {minimum} and {maximum}."
    return number, None


def _out_of_range(label):
    return f"Enter the {label} as a date between {FIRST_YEAR} and {LAST_YEAR}."


def _to_utc(parsed, timezone_name, wrong):
    try:
        if parsed.tzinfo is None:
            parsed = local_to_utc(parsed, timezone_name)
        return parsed.astimezone(UTC).replace(microsecond=0), None
    except (OverflowError, ValueError):
        return None, wrong


def _row(model, value, organisation, label):
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"Give the id of the {label} as a whole number."
    row = db.session.get(model, value) if 0 < value <= MAX_ID else None
    if row is None or row.organisation_id != organisation.id:
        return None, f"There is no {label} with id {value} in this organisation."
    return row, None


def _keep(changes, errors, field, relationship, row, message):
    if row is None:
        errors[field] = message
    else:
        changes[field], changes[relationship] = row.id, row


def _remark(value):
    if value is None:
        return "", None
    if not isinstance(value, str):
        return None, "Enter the remark as text."
    if "\x00" in value:
        return None, "The remark cannot contain NUL characters."
    value = value.strip()
    if len(value) > REMARK_MAX_LENGTH:
        return None, f"The remark can be at most {REMARK_MAX_LENGTH} characters long."
    return value, None
