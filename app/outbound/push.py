"""The outbound job: make the delegated user's Outlook calendar show a booking as it is now.

One job per (integration, booking), coalesced, reading the booking when it runs: several
quick changes end in one write of the latest data. Creates carry a transactionId derived
from the booking, so a create retried after a lost answer never makes a second event.
"""

import logging
from urllib.parse import quote

from app.extensions import db
from app.graph.errors import GraphError, GraphNotFound
from app.graph.tokens import ReconnectRequired, graph_client_for
from app.jobs import queue
from app.jobs.handlers import handler
from app.models import Booking, CalendarLink, Integration, OutboundEvent, SyncLogEntry
from app.models.calendar_link import MAILBOX_ME
from app.models.integration import CONNECTION_CONNECTED
from app.models.job import JOB_FAILED, Job
from app.outbound.event_body import changed_fields, create_request, desired_event
from app.outbound.trigger import OUTBOUND_BOOKING

log = logging.getLogger(__name__)


class OutboundParked(Exception):
    """Outbound cannot run until a person acts (reconnect); the job is parked, not retried."""

    is_transient = False


@handler(OUTBOUND_BOOKING)
def run_outbound(key, payload):
    integration_id, booking_id = (int(part) for part in key.split(":"))
    push_booking(integration_id, booking_id)


def push_booking(integration_id, booking_id, *, client=None):
    """Create, update or delete the Outlook event of one booking; returns the action taken."""
    integration = db.session.get(Integration, integration_id)
    booking = db.session.get(Booking, booking_id)
    if integration is None or booking is None or not integration.is_delegated:
        return "skip"
    if integration.connection_state != CONNECTION_CONNECTED:
        raise OutboundParked(
            f"Integration {integration.name} is not connected to Microsoft; outbound resumes after reconnecting."
        )
    state = db.session.get(OutboundEvent, (booking_id, integration_id)) or OutboundEvent(
        booking_id=booking_id, integration_id=integration_id
    )
    try:
        client = client or graph_client_for(integration)
        action, reason = _apply(integration, booking, state, client)
    except ReconnectRequired as refusal:
        db.session.rollback()
        raise OutboundParked(f"{refusal}; outbound resumes after reconnecting.") from None
    except GraphError as error:
        db.session.rollback()
        if error.is_transient:
            raise  # the queue retries after Retry-After or backoff
        _log(integration, booking, "error", f"Outlook refused the change: {error}", is_error=True)
        db.session.commit()
        return "error"
    if state not in db.session:
        db.session.add(state)
    _log(integration, booking, action, reason, event_id=booking.extra.get(integration.ires_field))
    db.session.commit()
    return action


def _apply(integration, booking, state, client):
    field = integration.ires_field
    event_id = booking.extra.get(field)
    status_ids = {
        "create": {s.id for s in integration.create_calendar_entry_statuses},
        "delete": {s.id for s in integration.delete_on_statuses},
    }
    own_calendar = db.session.scalar(
        db.select(CalendarLink).where(
            CalendarLink.integration_id == integration.id,
            CalendarLink.mailbox == MAILBOX_ME,
            CalendarLink.enabled.is_(True),
        )
    )
    on_this_calendar = own_calendar is not None and (
        own_calendar.object_id == booking.object_id or _kept_from_former_object(booking, state, event_id)
    )

    if event_id and (booking.status_id in status_ids["delete"] or not on_this_calendar):
        _delete(client, event_id)
        booking.extra.pop(field, None)
        state.snapshot, state.join_url, state.object_id = None, None, None
        state.generation += 1  # a later create is a new event, not a replay of the old one
        why = f"status {booking.status.name}" if on_this_calendar else "the booking left this calendar's object"
        return "delete", f"Removed from Outlook: {why}."
    if not on_this_calendar:
        return "skip", "Not on the object of the connected calendar."
    if not event_id:
        if booking.status_id not in status_ids["create"]:
            return "skip", f"Status {booking.status.name} does not create a calendar entry."
        created = client.post("me/events", json=create_request(booking, integration, state.generation))
        booking.extra[field] = created["id"]
        state.snapshot = desired_event(booking, integration)
        state.join_url = ((created.get("onlineMeeting") or {}).get("joinUrl")) or None
        state.object_id = booking.object_id
        return "create", "Created in Outlook."
    desired = desired_event(booking, integration)
    changes = changed_fields(desired, state.snapshot)
    if not changes:
        state.object_id = booking.object_id
        return "skip", "Outlook already shows this booking."
    try:
        client.patch(event_path(event_id), json=changes)
    except GraphNotFound:
        # Deleted in Outlook meanwhile: the inbound sync handles that as a cancellation.
        return "skip", "The Outlook event no longer exists."
    state.snapshot = desired
    state.object_id = booking.object_id
    return "update", "Updated in Outlook: " + ", ".join(sorted(changes)) + "."


def _kept_from_former_object(booking, state, event_id):
    """A booking linked while the calendar booked another object, and still on that object.

    Changing the calendar's object leaves the bookings it already linked where they are
    (`app.admin.calendar_object`); their events keep following them. A booking moved to
    another object since its event was written is not kept: it leaves the calendar.
    """
    return bool(event_id) and state.object_id is not None and state.object_id == booking.object_id


def event_path(event_id):
    # Ids are opaque: one holding '/', '+' or '=' must not change the path it names.
    return "me/events/" + quote(event_id, safe="")


def _delete(client, event_id):
    try:
        client.delete(event_path(event_id))
    except GraphNotFound:
        pass  # already gone: exactly what was wanted


def _log(integration, booking, action, reason, *, event_id=None, is_error=False):
    db.session.add(
        SyncLogEntry(
            organisation_id=integration.organisation_id,
            integration_id=integration.id,
            booking_id=booking.id,
            event_id=event_id,
            direction="outbound",
            action=action,
            reason=reason,
            is_error=is_error,
        )
    )


def resume_parked(integration_id):
    """Queue again the outbound jobs parked while the integration was disconnected. Commits."""
    parked = db.session.scalars(
        db.select(Job.id).where(
            Job.kind == OUTBOUND_BOOKING,
            Job.state == JOB_FAILED,
            Job.key.startswith(f"{integration_id}:", autoescape=True),
        )
    ).all()
    for job_id in parked:
        queue.retry(job_id)
    return len(parked)
