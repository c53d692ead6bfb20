"""Pure: the Outlook event a booking should be, and what changed since the last write."""

import uuid

# A GUID of this product's own for its extended property; the name says what it holds.
EXTENDED_PROPERTY_ID = "String {5f3b9c1e-7a2d-4e8f-9b6c-2d1e0a4f7c35} Name ireserveBookingId"
# Namespace for transactionIds: the same booking and generation always give the same id.
TRANSACTION_NAMESPACE = uuid.UUID("8c7f0b6e-2f4a-4d1b-a3e5-9b0c6d2e1f47")
SUBJECT_LIMIT = 255


def subject_for(booking):
    """`<remark or object name> [<booking id>]`: the suffix lets inbound find the booking again."""
    first_line = (booking.remark or "").strip().splitlines()[0] if (booking.remark or "").strip() else ""
    suffix = f" [{booking.id}]"
    text = first_line or booking.object.name
    return text[: SUBJECT_LIMIT - len(suffix)] + suffix


def body_text(booking):
    lines = [booking.remark.strip()] if (booking.remark or "").strip() else []
    if booking.customer is not None:
        who = booking.customer.name + (f" <{booking.customer.email}>" if booking.customer.email else "")
        lines.append(f"Customer: {who}")
    lines.append(f"i-Reserve booking {booking.id}, {booking.object.name}")
    return "\n\n".join(lines)


def _graph_time(moment):
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def desired_event(booking, integration):
    """The fields this product manages on the booking's event, as Graph expects them."""
    event = {
        "subject": subject_for(booking),
        "body": {"contentType": "text", "content": body_text(booking)},
        "start": _graph_time(booking.start_at),
        "end": _graph_time(booking.end_at),
        "location": {"displayName": booking.object.name},
        "attendees": [],
        "isOnlineMeeting": bool(integration.teams_meeting),
    }
    customer = booking.customer
    if integration.add_customer_attendee and customer is not None and customer.email:
        event["attendees"] = [{"emailAddress": {"address": customer.email, "name": customer.name}, "type": "required"}]
    if integration.teams_meeting:
        event["onlineMeetingProvider"] = "teamsForBusiness"
    return event


def create_request(booking, integration, generation):
    """The POST body: the event, its booking id in an extended property, a stable transactionId."""
    return {
        **desired_event(booking, integration),
        "transactionId": transaction_id(integration.id, booking.id, generation),
        "singleValueExtendedProperties": [{"id": EXTENDED_PROPERTY_ID, "value": str(booking.id)}],
    }


def transaction_id(integration_id, booking_id, generation):
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{integration_id}:{booking_id}:{generation}"))


def changed_fields(desired, last_written):
    """Only what differs from the last write: a PATCH must not overwrite untouched fields."""
    last_written = last_written or {}
    return {name: value for name, value in desired.items() if last_written.get(name) != value}
