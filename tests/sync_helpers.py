"""Building blocks for sync tests: a room link, a Graph client and delta pages."""

from datetime import UTC, datetime, timedelta

from app.extensions import db
from app.graph.client import GraphClient
from app.models import Booking, CalendarLink, Integration
from app.models.integration import AUTH_APPLICATION, CONNECTION_CONNECTED

GRAPH = "https://graph.test/v1.0"


class StaticToken:
    def get_token(self):
        return "test-access-token"

    def refresh_token(self):
        return "test-access-token"


def graph_client(**options):
    options.setdefault("sleep", lambda seconds: None)
    return GraphClient(GRAPH, StaticToken(), **options)


def make_room_link(world, upn="room-a@contoso.example", **settings):
    """An application-mode integration of organisation A with one room on A's object."""
    integration = Integration(
        organisation_id=world.a.org,
        name="Rooms",
        auth_mode=AUTH_APPLICATION,
        tenant_id="contoso.example",
        client_id="11111111-2222-3333-4444-555555555555",
        connection_state=CONNECTION_CONNECTED,
        cancel_status_id=world.a.statuses["Cancelled"],
        new_booking_status_id=world.a.statuses["Option"],
        **settings,
    )
    db.session.add(integration)
    link = CalendarLink(integration=integration, mailbox=upn, object_id=world.a.object)
    db.session.add(link)
    db.session.commit()
    return link


def at(day, hour, minute=0):
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def graph_time(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000")


def event(event_id, start, end, subject="Meeting", **extra):
    body = {
        "@odata.type": "#microsoft.graph.event",
        "id": event_id,
        "subject": subject,
        "type": "singleInstance",
        "isAllDay": False,
        "isCancelled": False,
        "body": {"contentType": "text", "content": ""},
        "start": {"dateTime": graph_time(start), "timeZone": "UTC"},
        "end": {"dateTime": graph_time(end), "timeZone": "UTC"},
        "organizer": {"emailAddress": {"name": "Organiser", "address": "organiser@contoso.example"}},
    }
    body.update(extra)
    return body


def removed(event_id):
    return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}


def page(items, *, next_link=None, delta_link=None):
    body = {"@odata.context": f"{GRAPH}/$metadata#Collection(event)", "value": items}
    if next_link:
        body["@odata.nextLink"] = next_link
    if delta_link:
        body["@odata.deltaLink"] = delta_link
    return body


def delta_url(upn="room-a@contoso.example"):
    return f"{GRAPH}/users/{upn}/calendarView/delta"


def bookings_state(ires_field="outlook_event_id"):
    """Everything a user would notice about the bookings, for comparing runs."""
    rows = db.session.scalars(db.select(Booking).order_by(Booking.start_at, Booking.id)).all()
    return [
        (b.object_id, b.status.name, b.start_at, b.end_at, b.remark, b.channel, (b.extra or {}).get(ires_field))
        for b in rows
    ]


def window_is_about_now(link, now, past=90, future=365):
    return abs(link.window_start - (now - timedelta(days=past))) < timedelta(minutes=5) and abs(
        link.window_end - (now + timedelta(days=future))
    ) < timedelta(minutes=5)
