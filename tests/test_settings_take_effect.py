"""Saved settings take effect: application settings are checked and connect, a method switch
disconnects cleanly after confirmation, and a delegated calendar follows its new object."""

import json
import re
from datetime import UTC, datetime, timedelta

import responses

from app.extensions import db
from app.models import (
    AuditEntry,
    BookableObject,
    Booking,
    BookingStatus,
    CalendarLink,
    Integration,
    Job,
    OAuthToken,
    OutboundEvent,
)
from app.outbound.push import push_booking
from app.sync.engine import sync_link
from tests.admin_helpers import CLIENT_ID, TENANT, add_rooms_integration, count, run_queued_jobs
from tests.sync_helpers import GRAPH, event, graph_client, page
from tests.test_outbound import book
from tests.test_portal import integration_data

TOKEN_URL = f"https://login.test/{TENANT}/oauth2/v2.0/token"
APP_TOKEN = {"token_type": "Bearer", "expires_in": 3599, "access_token": "app-only-access-token-SET-7e2"}
WRONG_SECRET = {
    "error": "invalid_client",
    "error_description": "AADSTS7000215: Invalid client secret provided.",
    "error_codes": [7000215],
}
EVENTS = f"{GRAPH}/me/events"


def text_of(response):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def jobs_of(kind):
    return sorted(db.session.scalars(db.select(Job.key).where(Job.kind == kind, Job.state == "queued")))


def application_data(world, **overrides):
    values = dict(auth_mode="application", tenant_id=TENANT, object_id=0, client_secret="app-secret-SET-1")
    return integration_data(world, **(values | overrides))


# --- An application integration starts working when it is set up ----------------------------


def test_a_new_application_integration_is_checked_and_its_rooms_start_without_test_connection(app, login, world):
    client = login(world.a.admin)
    saved = client.post(f"/orgs/{world.a.org}/integrations/new", data=application_data(world), follow_redirects=True)
    assert "Checking the settings with Microsoft is queued" in text_of(saved)
    with app.app_context():
        integration_id = db.session.scalar(db.select(Integration.id))
    base = f"/orgs/{world.a.org}/integrations/{integration_id}"
    assert "Checking the settings with Microsoft…" in text_of(client.get(base))

    added = client.post(
        base + "/rooms", data={"upn": "hall@alpha.example", "object_id": world.a.object}, follow_redirects=True
    )
    # Not connected yet: nothing can run, so the flash does not say it is queued.
    assert "it is subscribed and synced once the integration is connected" in text_of(added)
    assert "queued" not in text_of(added).split("hall@alpha.example added")[1][:80]

    with responses.RequestsMock() as microsoft:
        microsoft.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
        with app.app_context():
            assert run_queued_jobs("settings_check") == {("settings_check", str(integration_id)): "done"}
        assert len(microsoft.calls) == 1 and "grant_type=client_credentials" in microsoft.calls[0].request.body
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.connection_error) == ("connected", None)
        link_id = db.session.scalar(db.select(CalendarLink.id))
        assert jobs_of("subscribe_link") == [str(link_id)]

    # The subscription job creates the subscription and queues the room's first sync.
    with responses.RequestsMock() as graph:
        graph.post(
            f"{GRAPH}/subscriptions", status=201, json={"id": "sub-9", "expirationDateTime": "2026-11-28T12:00Z"}
        )
        with app.app_context():
            assert run_queued_jobs("subscribe_link") == {("subscribe_link", str(link_id)): "done"}
            assert db.session.get(CalendarLink, link_id).subscription_id == "sub-9"
            assert jobs_of("sync_link") == [str(link_id)]
    page_text = text_of(client.get(base))
    assert "Checking the settings" not in page_text and "connected" in page_text

    more = client.post(
        base + "/rooms", data={"upn": "lobby@alpha.example", "object_id": world.a.object}, follow_redirects=True
    )
    assert "Room lobby@alpha.example added; its subscription and first sync are queued." in text_of(more)


def test_a_wrong_secret_shows_microsofts_reason_on_the_integration_page(app, login, world):
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/integrations/new", data=application_data(world), follow_redirects=True)
    with app.app_context():
        integration_id = db.session.scalar(db.select(Integration.id))
    with responses.RequestsMock() as microsoft:
        microsoft.add(responses.POST, TOKEN_URL, status=401, json=WRONG_SECRET)
        with app.app_context():
            assert run_queued_jobs("settings_check") == {("settings_check", str(integration_id)): "done"}
    page_text = text_of(client.get(f"/orgs/{world.a.org}/integrations/{integration_id}"))
    assert "The client secret is wrong (AADSTS7000215)" in page_text
    assert "Checking the settings" not in page_text
    assert "app-secret-SET-1" not in page_text
    with app.app_context():
        assert db.session.get(Integration, integration_id).connection_state == "needs_reconnect"


def test_saving_a_new_secret_checks_again_and_unchanged_working_settings_do_not(app, login, world):
    with app.app_context():
        rooms = add_rooms_integration(world.a, ["hall@alpha.example"], client_secret="app-secret-SET-1")
    client = login(world.a.admin)
    same = application_data(world, client_id=CLIENT_ID, client_secret="")
    unchanged = client.post(rooms.base + "/edit", data=same, follow_redirects=True)
    assert "Checking the settings" not in text_of(unchanged)
    with app.app_context():
        assert jobs_of("settings_check") == []
    client.post(rooms.base + "/edit", data=same | {"client_secret": "app-secret-SET-2"})
    with app.app_context():
        assert jobs_of("settings_check") == [str(rooms.id)]


# --- Switching the connection method ------------------------------------------------------------


def connected_delegated(world, clock):
    integration = Integration(
        organisation_id=world.a.org,
        name="Front desk",
        auth_mode="delegated",
        tenant_id=TENANT,
        client_id="11111111-2222-3333-4444-555555555555",
        client_secret="delegated-secret-SET",
        connection_state="connected",
        connected_account="desk@alpha.example",
        object_id=world.a.object,
    )
    db.session.add(integration)
    db.session.add(
        CalendarLink(
            integration=integration,
            mailbox="me",
            object_id=world.a.object,
            subscription_id="sub-me",
            subscription_client_state="state-me",
        )
    )
    integration.token = OAuthToken(
        access_token="delegated-access-SET",
        refresh_token="delegated-refresh-SET",
        expires_at=clock.now + timedelta(hours=1),
    )
    db.session.commit()
    return integration.id


def batch_deleting(seen):
    def answer(request):
        items = json.loads(request.body)["requests"]
        seen.extend((item["method"], item["url"], request.headers["Authorization"]) for item in items)
        return 200, {}, json.dumps({"responses": [{"id": item["id"], "status": 204, "body": None} for item in items]})

    return answer


def test_switching_a_connected_delegated_integration_to_application_asks_then_disconnects(app, login, world, clock):
    with app.app_context():
        integration_id = connected_delegated(world, clock)
    base = f"/orgs/{world.a.org}/integrations/{integration_id}"
    client = login(world.a.admin)
    form = application_data(world, client_secret="typed-new-secret-SET")

    asked = client.post(base + "/edit", data=form)
    assert asked.status_code == 200
    page_text = text_of(asked)
    assert "Switch Meeting rooms to the application method?" not in page_text  # the name is not saved yet either
    assert "to the application method?" in page_text and "Nothing is saved yet." in page_text
    assert "1 calendar link(s) are removed" in page_text
    assert "1 subscription(s) are deleted at Microsoft, in the background." in page_text
    assert "The stored tokens are deleted once those deletions have run." in page_text
    assert "type it again here to use it, or leave the field empty to keep the stored secret" in page_text
    assert "typed-new-secret-SET" not in asked.get_data(as_text=True)
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.auth_mode, integration.name, integration.connection_state) == (
            "delegated",
            "Front desk",
            "connected",
        )
        assert count(CalendarLink) == 1 and count(OAuthToken) == 1 and count(Job) == 0

    # The confirmation page re-posts what was entered, with the confirm flag and without the secret.
    carried = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', asked.get_data(as_text=True)))
    assert carried["confirm_switch"] == "1" and carried["auth_mode"] == "application"
    confirmed = client.post(base + "/edit", data=form | {"confirm_switch": "1", "client_secret": ""})
    assert confirmed.status_code == 302
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.auth_mode, integration.connection_state, integration.connected_account) == (
            "application",
            "not_connected",
            None,
        )
        assert integration.client_secret == "delegated-secret-SET"  # kept: the field was left empty
        assert count(CalendarLink) == 0
        assert jobs_of("finish_disconnect") == [str(integration_id)]
        assert jobs_of("settings_check") == [str(integration_id)]

    seen = []
    with responses.RequestsMock() as graph:
        graph.add_callback(responses.POST, f"{GRAPH}/$batch", callback=batch_deleting(seen))
        with app.app_context():
            assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(integration_id)): "done"}
    # Made with the delegated token, so deleted with it.
    assert seen == [("DELETE", "/subscriptions/sub-me", "Bearer delegated-access-SET")]
    with app.app_context():
        assert count(OAuthToken) == 0

    with responses.RequestsMock() as microsoft:
        microsoft.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
        with app.app_context():
            run_queued_jobs("settings_check")
    with app.app_context():
        assert db.session.get(Integration, integration_id).connection_state == "connected"
        assert count(CalendarLink, CalendarLink.mailbox == "me") == 0


def test_switching_an_application_integration_to_delegated_removes_its_rooms(app, login, world):
    with app.app_context():
        rooms = add_rooms_integration(
            world.a,
            [
                {"mailbox": "r1@alpha.example", "subscription_id": "sub-1", "subscription_client_state": "s1"},
                {"mailbox": "r2@alpha.example", "subscription_id": "sub-2", "subscription_client_state": "s2"},
            ],
        )
        booking = Booking(
            organisation_id=world.a.org,
            object_id=world.a.object,
            status_id=world.a.statuses["Confirmed"],
            start_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
            end_at=datetime(2026, 12, 1, 10, tzinfo=UTC),
            extra={"outlook_event_id": "room-ev-1"},
        )
        db.session.add(booking)
        db.session.commit()
    client = login(world.a.admin)
    form = integration_data(world, tenant_id=TENANT, client_secret="")

    asked = text_of(client.post(rooms.base + "/edit", data=form))
    assert "2 calendar link(s) are removed: the rooms of the room table" in asked
    assert "2 subscription(s) are deleted at Microsoft" in asked
    assert "secret" not in asked.split("Nothing is saved yet.")[1].split("Switch and disconnect")[0].lower()
    with app.app_context():
        assert count(CalendarLink) == 2 and db.session.get(Integration, rooms.id).auth_mode == "application"

    assert client.post(rooms.base + "/edit", data=form | {"confirm_switch": "1"}).status_code == 302
    with app.app_context():
        integration = db.session.get(Integration, rooms.id)
        assert (integration.auth_mode, integration.connection_state) == ("delegated", "not_connected")
        assert count(CalendarLink) == 0
        assert count(Booking) == 1  # the bookings stay
        assert jobs_of("settings_check") == []
        disconnects = db.session.scalars(db.select(Job).where(Job.kind == "finish_disconnect")).all()
        assert [job.payload["auth_mode"] for job in disconnects] == ["application"]

    seen = []
    with responses.RequestsMock() as microsoft:
        microsoft.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
        microsoft.add_callback(responses.POST, f"{GRAPH}/$batch", callback=batch_deleting(seen))
        with app.app_context():
            assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(rooms.id)): "done"}
    # Made with the app's own token, so deleted with a client-credentials token.
    assert sorted(url for _, url, _ in seen) == ["/subscriptions/sub-1", "/subscriptions/sub-2"]
    assert {token for *_, token in seen} == {"Bearer app-only-access-token-SET-7e2"}


def test_a_switch_with_nothing_to_undo_needs_no_confirmation(app, login, world):
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/integrations/new", data=integration_data(world, tenant_id=TENANT))
    with app.app_context():
        integration_id = db.session.scalar(db.select(Integration.id))
    saved = client.post(f"/orgs/{world.a.org}/integrations/{integration_id}/edit", data=application_data(world))
    assert saved.status_code == 302
    with app.app_context():
        assert db.session.get(Integration, integration_id).auth_mode == "application"


# --- Changing the object of a connected delegated calendar -------------------------------------


def delegated_on_room_a(world, clock):
    """A connected delegated integration (create on Confirmed, cancel to Cancelled) on Room A, plus Room N."""
    statuses = {
        s.name: s
        for s in db.session.scalars(db.select(BookingStatus).where(BookingStatus.organisation_id == world.a.org))
    }
    integration_id = connected_delegated(world, clock)
    integration = db.session.get(Integration, integration_id)
    integration.cancel_status = statuses["Cancelled"]
    integration.new_booking_status = statuses["Option"]
    integration.create_calendar_entry_statuses = [statuses["Confirmed"]]
    integration.delete_on_statuses = [statuses["Cancelled"]]
    new_room = BookableObject(organisation_id=world.a.org, name="Room N", capacity=4)
    db.session.add(new_room)
    db.session.commit()
    return integration_id, new_room.id


def object_change_form(world, object_id):
    return integration_data(
        world,
        name="Front desk",
        tenant_id=TENANT,
        client_secret="",
        object_id=object_id,
        create_entry_status_ids=[world.a.statuses["Confirmed"]],
        new_booking_status_id=world.a.statuses["Option"],
        teams_meeting="",
    )


def test_a_new_object_applies_to_the_calendar_at_once_and_linked_bookings_stay(app, login, world, clock):
    with app.app_context():
        integration_id, new_room = delegated_on_room_a(world, clock)
        with responses.RequestsMock() as graph:
            pushed = book(world, remark="Pushed before", hour=9)
            graph.post(EVENTS, status=201, json={"id": "ev-pushed", "subject": "x"})
            assert push_booking(integration_id, pushed, client=graph_client(max_attempts=1)) == "create"
        inbound = Booking(
            organisation_id=world.a.org,
            object_id=world.a.object,
            status_id=world.a.statuses["Option"],
            start_at=datetime(2026, 12, 2, 9, tzinfo=UTC),
            end_at=datetime(2026, 12, 2, 10, tzinfo=UTC),
            channel="external/outlook",
            extra={"outlook_event_id": "ev-inbound"},
        )
        db.session.add(inbound)
        db.session.execute(db.delete(Job))
        db.session.commit()
        inbound_id = inbound.id
    base = f"/orgs/{world.a.org}/integrations/{integration_id}"
    client = login(world.a.admin)
    assert "Bookings already linked to an Outlook appointment stay on their object" in text_of(
        client.get(base + "/edit")
    )

    saved = client.post(base + "/edit", data=object_change_form(world, new_room), follow_redirects=True)
    assert "the 2 booking(s) already linked to its appointments stay on Room A" in text_of(saved)
    with app.app_context():
        assert db.session.scalar(db.select(CalendarLink.object_id)) == new_room
        detail = db.session.scalars(db.select(AuditEntry.detail).where(AuditEntry.action == "settings_saved")).all()
        assert len(detail) == 1
        assert detail[0].endswith(
            "Object: Room A → Room N; the own calendar books Room N from now on; "
            "2 booking(s) linked to its appointments stay on Room A."
        )
    status_page = client.get(base).get_data(as_text=True)
    assert "<td>Room N</td>" in status_page and "<dd>Room N</dd>" in status_page and "Room A" not in status_page

    # Inbound: linked appointments keep updating or cancelling their own bookings; a new one books Room N.
    delta = f"{GRAPH}/me/calendarView/delta"
    with app.app_context(), responses.RequestsMock() as graph:
        moved = event(
            "ev-pushed",
            datetime(2026, 12, 1, 14, tzinfo=UTC),
            datetime(2026, 12, 1, 15, tzinfo=UTC),
            subject=f"Pushed before [{pushed}]",
        )
        cancelled = event(
            "ev-inbound", datetime(2026, 12, 2, 9, tzinfo=UTC), datetime(2026, 12, 2, 10, tzinfo=UTC), isCancelled=True
        )
        fresh = event("ev-new", datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 10, tzinfo=UTC))
        graph.get(delta, json=page([moved, cancelled, fresh], delta_link=f"{delta}?$deltatoken=1"))
        link_id = db.session.scalar(db.select(CalendarLink.id))
        summary = sync_link(link_id, client=graph_client(max_attempts=1))
        assert (summary.created, summary.updated, summary.cancelled) == (1, 1, 1)
        rows = {
            b.extra.get("outlook_event_id") or b.id: (b.id, b.object_id, b.start_at.hour, b.status.name)
            for b in db.session.scalars(db.select(Booking))
        }
        assert rows["ev-pushed"] == (pushed, world.a.object, 14, "Confirmed")
        assert rows[inbound_id] == (inbound_id, world.a.object, 9, "Cancelled")
        assert rows["ev-new"][1:] == (new_room, 9, "Option")
        assert count(Booking) == 3


def test_after_an_object_change_outbound_serves_linked_old_bookings_and_the_new_object(app, login, world, clock):
    with app.app_context():
        integration_id, new_room = delegated_on_room_a(world, clock)
        with responses.RequestsMock() as graph:
            pushed = book(world, remark="Pushed before", hour=9)
            graph.post(EVENTS, status=201, json={"id": "ev-pushed", "subject": "x"})
            push_booking(integration_id, pushed, client=graph_client(max_attempts=1))
        db.session.execute(db.delete(Job))
        db.session.commit()
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/integrations/{integration_id}/edit", data=object_change_form(world, new_room))

    with app.app_context(), responses.RequestsMock() as graph:
        db.session.execute(db.delete(Job))
        db.session.commit()
        # A change of the linked booking on Room A is sent to its event, not deleted from Outlook.
        book(world, remark="Pushed before", hour=15, booking=db.session.get(Booking, pushed))
        assert jobs_of("outbound_booking") == [f"{integration_id}:{pushed}"]
        graph.patch(f"{EVENTS}/ev-pushed", json={"id": "ev-pushed"})
        assert push_booking(integration_id, pushed, client=graph_client(max_attempts=1)) == "update"
        # Cancelling it deletes its event.
        book(world, status="Cancelled", booking=db.session.get(Booking, pushed))
        graph.delete(f"{EVENTS}/ev-pushed", status=204)
        assert push_booking(integration_id, pushed, client=graph_client(max_attempts=1)) == "delete"
        db.session.execute(db.delete(Job))
        db.session.commit()

        # A new booking of Room N is created in Outlook; a new one of Room A no longer is.
        on_new = Booking(organisation_id=world.a.org, object_id=new_room)
        on_new_id = book(world, remark="On the new room", hour=11, booking=on_new)
        on_old_id = book(world, remark="On the old room", hour=12)
        assert jobs_of("outbound_booking") == [f"{integration_id}:{on_new_id}"]
        graph.post(EVENTS, status=201, json={"id": "ev-new-room", "subject": "x"})
        assert push_booking(integration_id, on_new_id, client=graph_client(max_attempts=1)) == "create"
        assert db.session.get(Booking, on_old_id).extra.get("outlook_event_id") is None
        assert [call.request.method for call in graph.calls] == ["PATCH", "DELETE", "POST"]


def test_a_booking_moved_to_another_object_still_leaves_outlook(app, world, clock):
    with app.app_context():
        integration_id, other_room = delegated_on_room_a(world, clock)
        with responses.RequestsMock() as graph:
            pushed = book(world, hour=9)
            graph.post(EVENTS, status=201, json={"id": "ev-1", "subject": "x"})
            push_booking(integration_id, pushed, client=graph_client(max_attempts=1))
            booking = db.session.get(Booking, pushed)
            booking.object_id = other_room
            book(world, hour=9, booking=booking)
            graph.delete(f"{EVENTS}/ev-1", status=204)
            assert push_booking(integration_id, pushed, client=graph_client(max_attempts=1)) == "delete"
        assert db.session.get(OutboundEvent, (pushed, integration_id)).object_id is None
