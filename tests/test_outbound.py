"""Outbound (delegated): bookings appear in Outlook once, follow changes, leave on a delete status, never loop."""

import json
import uuid
from datetime import UTC, datetime

import pytest
import responses

from app.bookings.service import save_booking
from app.extensions import db
from app.graph.errors import GraphThrottled
from app.jobs import queue
from app.models import Booking, BookingStatus, CalendarLink, Integration, OAuthToken, SyncLogEntry
from app.models.integration import AUTH_DELEGATED, CONNECTION_CONNECTED, CONNECTION_NOT_CONNECTED
from app.models.job import Job
from app.outbound.event_body import EXTENDED_PROPERTY_ID
from app.outbound.push import OutboundParked, push_booking, resume_parked
from app.sync.engine import sync_link
from tests.sync_helpers import GRAPH, graph_client, make_room_link, page

EVENTS = f"{GRAPH}/me/events"


@pytest.fixture
def delegated(app, world, clock):
    """A connected delegated integration of organisation A on A's object, creating on Confirmed."""
    with app.app_context():
        statuses = {
            s.name: s
            for s in db.session.scalars(db.select(BookingStatus).where(BookingStatus.organisation_id == world.a.org))
        }
        integration = Integration(
            organisation_id=world.a.org,
            name="Front desk",
            auth_mode=AUTH_DELEGATED,
            tenant_id="contoso.example",
            client_id="11111111-2222-3333-4444-555555555555",
            connection_state=CONNECTION_CONNECTED,
            object_id=world.a.object,
            cancel_status=statuses["Cancelled"],
            new_booking_status=statuses["Option"],
            create_calendar_entry_statuses=[statuses["Confirmed"]],
            delete_on_statuses=[statuses["Cancelled"]],
        )
        db.session.add(integration)
        db.session.add(CalendarLink(integration=integration, mailbox="me", object_id=world.a.object))
        db.session.add(OAuthToken(integration=integration, access_token="t", refresh_token="r", expires_at=clock.now))
        db.session.commit()
        return integration.id


def book(world, status="Confirmed", remark="Board meeting", hour=9, booking=None):
    booking = booking or Booking(organisation_id=world.a.org, object_id=world.a.object)
    booking.status_id = world.a.statuses[status]
    booking.status = db.session.get(BookingStatus, booking.status_id)
    booking.customer_id = world.a.customer
    booking.start_at = datetime(2026, 12, 1, hour, tzinfo=UTC)
    booking.end_at = datetime(2026, 12, 1, hour + 1, tzinfo=UTC)
    booking.remark = remark
    assert save_booking(booking) == []
    return booking.id


def outbound_jobs():
    return db.session.scalars(db.select(Job.key).where(Job.kind == "outbound_booking", Job.state == "queued")).all()


def push(integration_id, booking_id):
    return push_booking(integration_id, booking_id, client=graph_client(max_attempts=1))


def created(event_id="ev-1", **extra):
    return {"id": event_id, "subject": "x", **extra}


def test_a_booking_reaching_a_create_status_is_created_once_with_its_id_suffix(app, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world)
        assert outbound_jobs() == [f"{delegated}:{booking_id}"]
        mock.post(EVENTS, status=201, json=created())
        assert push(delegated, booking_id) == "create"
        sent = json.loads(mock.calls[0].request.body)
        assert sent["subject"] == f"Board meeting [{booking_id}]"
        assert sent["start"] == {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"}
        assert sent["end"] == {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"}
        assert sent["location"] == {"displayName": "Room A"}
        assert "Board meeting" in sent["body"]["content"] and "Customer a <guest@a.example>" in sent["body"]["content"]
        assert sent["singleValueExtendedProperties"] == [{"id": EXTENDED_PROPERTY_ID, "value": str(booking_id)}]
        assert uuid.UUID(sent["transactionId"])
        assert sent["attendees"] == [] and sent["isOnlineMeeting"] is False
        booking = db.session.get(Booking, booking_id)
        assert booking.extra["outlook_event_id"] == "ev-1"
        # Running again changes nothing in Outlook.
        assert push(delegated, booking_id) == "skip"
        assert len(mock.calls) == 1


def test_a_status_outside_the_create_set_stays_out_of_outlook(app, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world, status="Option")
        assert push(delegated, booking_id) == "skip"
        assert len(mock.calls) == 0


def test_a_retried_create_sends_the_same_transaction_id(app, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world)
        mock.post(EVENTS, status=503, json={"error": {"code": "ServiceUnavailable"}})
        with pytest.raises(GraphThrottled):
            push(delegated, booking_id)
        mock.replace(responses.POST, EVENTS, status=201, json=created())
        push(delegated, booking_id)
        first, second = (json.loads(call.request.body)["transactionId"] for call in mock.calls)
        assert first == second


def test_a_change_patches_only_what_changed(app, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world)
        mock.post(EVENTS, status=201, json=created())
        push(delegated, booking_id)
        book(world, remark="Board meeting", hour=14, booking=db.session.get(Booking, booking_id))
        mock.patch(f"{EVENTS}/ev-1", json=created())
        assert push(delegated, booking_id) == "update"
        assert json.loads(mock.calls[1].request.body) == {
            "start": {"dateTime": "2026-12-01T14:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T15:00:00", "timeZone": "UTC"},
        }


def test_a_delete_status_removes_the_event_and_a_404_counts_as_done(app, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world)
        mock.post(EVENTS, status=201, json=created())
        push(delegated, booking_id)
        book(world, status="Cancelled", booking=db.session.get(Booking, booking_id))
        mock.delete(f"{EVENTS}/ev-1", status=404, json={"error": {"code": "ErrorItemNotFound"}})
        assert push(delegated, booking_id) == "delete"
        assert "outlook_event_id" not in db.session.get(Booking, booking_id).extra
        # Confirmed again later: a new event, with a new transactionId.
        book(world, status="Confirmed", booking=db.session.get(Booking, booking_id))
        mock.post(EVENTS, status=201, json=created("ev-2"))
        push(delegated, booking_id)
        first, second = (json.loads(c.request.body)["transactionId"] for c in mock.calls if c.request.method == "POST")
        assert first != second


def test_teams_meeting_and_customer_attendee(app, login, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        integration = db.session.get(Integration, delegated)
        integration.teams_meeting, integration.add_customer_attendee = True, True
        db.session.commit()
        booking_id = book(world)
        mock.post(EVENTS, status=201, json=created(onlineMeeting={"joinUrl": "https://teams.example/join/abc"}))
        push(delegated, booking_id)
        sent = json.loads(mock.calls[0].request.body)
        assert (sent["isOnlineMeeting"], sent["onlineMeetingProvider"]) == (True, "teamsForBusiness")
        assert sent["attendees"] == [
            {"emailAddress": {"address": "guest@a.example", "name": "Customer a"}, "type": "required"}
        ]
    page_html = login(world.a.admin).get(f"/orgs/{world.a.org}/bookings/{booking_id}/edit").get_data(as_text=True)
    assert 'href="https://teams.example/join/abc"' in page_html


def test_a_change_while_the_create_is_queued_ends_in_one_event_with_the_latest_data(app, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world, remark="First title")
        book(world, remark="Final title", booking=db.session.get(Booking, booking_id))
        assert outbound_jobs() == [f"{delegated}:{booking_id}"]  # coalesced
        mock.post(EVENTS, status=201, json=created())
        push(delegated, booking_id)
        assert len(mock.calls) == 1
        assert json.loads(mock.calls[0].request.body)["subject"] == f"Final title [{booking_id}]"


def test_the_echo_of_our_own_create_changes_nothing_and_queues_nothing(app, world, delegated):
    delta = f"{GRAPH}/me/calendarView/delta"
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world)
        mock.post(EVENTS, status=201, json=created())
        push(delegated, booking_id)
        db.session.execute(db.delete(Job))
        db.session.commit()
        before = db.session.get(Booking, booking_id)
        before_state = (before.status_id, before.start_at, before.end_at, before.remark)
        echo = {
            "id": "ev-1",
            "subject": f"Board meeting [{booking_id}]",
            "start": {"dateTime": "2026-12-01T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T10:00:00.0000000", "timeZone": "UTC"},
            "body": {"contentType": "text", "content": "Board meeting"},
            "type": "singleInstance",
        }
        mock.get(delta, json=page([echo], delta_link=f"{delta}?$deltatoken=1"))
        link_id = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.integration_id == delegated))
        summary = sync_link(link_id, client=graph_client(max_attempts=1))
        assert (summary.created, summary.updated) == (0, 0)
        after = db.session.get(Booking, booking_id)
        assert (after.status_id, after.start_at, after.end_at, after.remark) == before_state
        assert outbound_jobs() == []
        assert [c.request.method for c in mock.calls] == ["POST", "GET"]  # no further writes


def test_an_inbound_change_never_queues_outbound(app, world, delegated):
    delta = f"{GRAPH}/me/calendarView/delta"
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world)
        mock.post(EVENTS, status=201, json=created())
        push(delegated, booking_id)
        db.session.execute(db.delete(Job))
        db.session.commit()
        moved = {
            "id": "ev-1",
            "subject": f"Board meeting [{booking_id}]",
            "start": {"dateTime": "2026-12-01T15:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T16:00:00.0000000", "timeZone": "UTC"},
            "type": "singleInstance",
        }
        mock.get(delta, json=page([moved], delta_link=f"{delta}?$deltatoken=1"))
        link_id = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.integration_id == delegated))
        assert sync_link(link_id, client=graph_client(max_attempts=1)).updated == 1
        assert db.session.get(Booking, booking_id).start_at == datetime(2026, 12, 1, 15, tzinfo=UTC)
        assert outbound_jobs() == []


def test_application_mode_skips_outbound_and_says_so_once_per_change(app, world, clock):
    with app.app_context():
        make_room_link(world)
        booking_id = book(world)
        assert outbound_jobs() == []
        reasons = db.session.scalars(
            db.select(SyncLogEntry.reason).where(
                SyncLogEntry.booking_id == booking_id, SyncLogEntry.direction == "outbound"
            )
        ).all()
        assert reasons == ["Not sent to Outlook: an application-mode integration only reads room calendars."]


def test_other_refusals_are_logged_on_the_booking_and_not_retried(app, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world)
        mock.post(EVENTS, status=400, json={"error": {"code": "ErrorInvalidRequest", "message": "Bad attendee."}})
        assert push(delegated, booking_id) == "error"
        entry = db.session.scalar(db.select(SyncLogEntry).where(SyncLogEntry.action == "error"))
        assert entry.is_error and entry.booking_id == booking_id and "ErrorInvalidRequest" in entry.reason


def test_a_disconnected_integration_parks_outbound_and_reconnecting_resumes_it(app, world, delegated):
    with app.app_context():
        booking_id = book(world)
        db.session.get(Integration, delegated).connection_state = CONNECTION_NOT_CONNECTED
        db.session.commit()
        job = queue.claim("worker-1", kinds=["outbound_booking"])
        with pytest.raises(OutboundParked, match="reconnect") as parked:
            push(delegated, booking_id)
        queue.fail(job, parked.value)
        assert db.session.scalar(db.select(Job.state)) == "failed"
        assert "reconnect" in db.session.scalar(db.select(Job.last_error))
        assert resume_parked(delegated) == 1
        assert outbound_jobs() == [f"{delegated}:{booking_id}"]


def test_event_ids_are_escaped_in_the_path(app, world, delegated):
    with app.app_context(), responses.RequestsMock() as mock:
        booking_id = book(world)
        mock.post(EVENTS, status=201, json=created("AAMk/ab+c="))
        push(delegated, booking_id)
        book(world, status="Cancelled", booking=db.session.get(Booking, booking_id))
        mock.delete(f"{EVENTS}/AAMk%2Fab%2Bc%3D", status=204)
        assert push(delegated, booking_id) == "delete"
