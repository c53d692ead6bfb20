"""Delegated mode end to end: Connect with Microsoft through the consent page, then both directions."""

from datetime import datetime, timedelta

import pytest

from app.clock import local_to_utc
from app.extensions import db
from app.jobs.handlers import enqueue_link_sync
from app.models import Booking, BookingStatus, CalendarLink, Integration, Job
from app.models.integration import AUTH_DELEGATED, CONNECTION_CONNECTED, CONNECTION_NOT_CONNECTED
from app.outbound.event_body import EXTENDED_PROPERTY_ID
from tests.e2e.helpers import (
    TENANT,
    USER,
    add_integration,
    bookings_of,
    in_days,
    link_of,
    sign_in_at_microsoft,
    utc,
    wait_until_synced,
)
from tests.live import eventually

ZONE = "Europe/Amsterdam"  # the organisation's


def connect(client, world, portal, m365, integration_id, decision="accept"):
    """Press Connect with Microsoft, answer the consent page, follow the browser back to the portal."""
    response = client.post(f"/orgs/{world.a.org}/integrations/{integration_id}/connect")
    assert response.status_code == 302
    authorize_url = response.headers["Location"]
    assert authorize_url.startswith(f"{m365.base_url}/login/{TENANT}/oauth2/v2.0/authorize?")
    back = sign_in_at_microsoft(authorize_url, USER, decision)
    assert back.startswith(f"{portal}/oauth/callback?")
    return client.get(back[len(portal) :])


def own_link(integration_id):
    return db.session.scalar(db.select(CalendarLink).where(CalendarLink.integration_id == integration_id))


def jobs_settled(app):
    with app.app_context():
        return all(state == "failed" for state in db.session.scalars(db.select(Job.state)).all())


def test_connect_with_microsoft_through_the_consent_page(app, world, portal, m365, login, moved_clock):
    start, end = in_days(2, 10), in_days(2, 11)
    created = m365.control(
        "appointments",
        {"organizer": USER, "subject": "Customer visit", "start": start, "end": end, "time_zone": "UTC"},
    )
    with app.app_context():
        integration_id = add_integration(world, AUTH_DELEGATED).id
    client = login(world.a.admin)

    done = connect(client, world, portal, m365, integration_id)
    assert done.status_code == 302
    assert f"Connected to Microsoft as {USER}" in client.get(done.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.connected_account, integration.connected_name) == (
            CONNECTION_CONNECTED,
            USER,
            "Megan Bowen",
        )
        assert integration.token.refresh_token
        link_id = own_link(integration_id).id
    # The account came from the ID token of the token answer: the sign-in never asked Graph.
    assert [r for r in m365.requests("/v1.0/me") if r["path"] == "/v1.0/me"] == []
    link = wait_until_synced(app, link_id)
    with app.app_context():
        assert bookings_of(link_id) == [("Customer visit", utc(start), utc(end), "Confirmed", created["events"][USER])]
    (subscription,) = m365.subscriptions(USER)
    assert subscription["resource"] == "me/events"
    assert subscription["client_state"] == link.subscription_client_state

    # Hours later the access token is old: the portal renews it, and must keep the rotated refresh token.
    m365.control("settings", {"strict_refresh_rotation": True})
    for _ in range(2):
        moved_clock.advance(timedelta(hours=2))
        with app.app_context():
            old_refresh = db.session.get(Integration, integration_id).token.refresh_token
            enqueue_link_sync(link_id)
            db.session.commit()

        def renewed(old_refresh=old_refresh):
            with app.app_context():
                integration = db.session.get(Integration, integration_id)
                return integration.token.refresh_token != old_refresh and jobs_settled(app)

        eventually(renewed)
        with app.app_context():
            assert link_of(link_id).last_sync_status == "ok"
            assert db.session.get(Integration, integration_id).connection_state == CONNECTION_CONNECTED


def test_declining_consent_leaves_a_new_integration_not_connected(app, world, portal, m365, login):
    with app.app_context():
        integration_id = add_integration(world, AUTH_DELEGATED).id
    client = login(world.a.admin)
    done = connect(client, world, portal, m365, integration_id, decision="decline")
    assert done.status_code == 302
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Consent was declined (AADSTS65004)" in page
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.connection_error) == (CONNECTION_NOT_CONNECTED, None)
        assert integration.token is None
    assert m365.subscriptions() == []


@pytest.fixture
def connected(app, world, portal, m365, login):
    """A delegated integration connected through the consent page, creating events on Confirmed."""
    with app.app_context():
        integration = add_integration(world, AUTH_DELEGATED, teams_meeting=True)
        integration.create_calendar_entry_statuses = [db.session.get(BookingStatus, world.a.statuses["Confirmed"])]
        integration.delete_on_statuses = [db.session.get(BookingStatus, world.a.statuses["Cancelled"])]
        db.session.commit()
        integration_id = integration.id
    client = login(world.a.admin)
    assert connect(client, world, portal, m365, integration_id).status_code == 302
    with app.app_context():
        link_id = own_link(integration_id).id
    wait_until_synced(app, link_id)
    return client, link_id


def test_a_booking_goes_to_outlook_follows_changes_and_leaves_without_ping_pong(app, world, m365, connected):
    client, link_id = connected
    start, end = _local_in_days(3, 12), _local_in_days(3, 13)
    saved = client.post(
        f"/orgs/{world.a.org}/bookings/new",
        data={
            "object_id": world.a.object,
            "customer_id": 0,
            "status_id": world.a.statuses["Confirmed"],
            "start_at": start,
            "end_at": end,
            "remark": "Team lunch",
        },
    )
    assert saved.status_code == 302, saved.get_data(as_text=True)
    with app.app_context():
        booking_id = db.session.scalar(db.select(Booking.id))

    def outlook_event():
        with app.app_context():
            db.session.expire_all()
            event_id = (db.session.get(Booking, booking_id).extra or {}).get("outlook_event_id")
        events = m365.control(f"mailboxes/{USER}/events", method="GET")["value"]
        return next((e for e in events if e["id"] == event_id), None)

    event = eventually(outlook_event)
    assert event["subject"] == f"Team lunch [{booking_id}]"
    assert event["transactionId"]
    assert event["singleValueExtendedProperties"] == [{"id": EXTENDED_PROPERTY_ID, "value": str(booking_id)}]
    assert event["isOnlineMeeting"] is True and event["onlineMeeting"]["joinUrl"].startswith(
        "https://teams.microsoft.com/"
    )
    assert (event["start"]["dateTime"][:16], event["end"]["dateTime"][:16]) == (_as_utc(start), _as_utc(end))

    # The notification of our own create comes back and is synced: it must change nothing.
    eventually(lambda: any("created" in d["changeTypes"] for d in m365.deliveries("delivered")))
    eventually(lambda: jobs_settled(app))
    with app.app_context():
        assert bookings_of(link_id) == [
            ("Team lunch", _utc(start), _utc(end), "Confirmed", event["id"]),
        ]
    assert [r["method"] for r in m365.requests("/me/events") if r["method"] != "GET"] == ["POST"]

    later_start, later_end = _local_in_days(4, 15), _local_in_days(4, 16)
    client.post(
        f"/orgs/{world.a.org}/bookings/{booking_id}/edit",
        data={
            "object_id": world.a.object,
            "customer_id": 0,
            "status_id": world.a.statuses["Confirmed"],
            "start_at": later_start,
            "end_at": later_end,
            "remark": "Team lunch",
        },
    )
    moved = eventually(lambda: (e := outlook_event()) and e["start"]["dateTime"][:16] == _as_utc(later_start) and e)
    assert moved["id"] == event["id"] and moved["end"]["dateTime"][:16] == _as_utc(later_end)

    client.post(
        f"/orgs/{world.a.org}/bookings/{booking_id}/edit",
        data={
            "object_id": world.a.object,
            "customer_id": 0,
            "status_id": world.a.statuses["Cancelled"],
            "start_at": later_start,
            "end_at": later_end,
            "remark": "Team lunch",
        },
    )
    eventually(lambda: not m365.control(f"mailboxes/{USER}/events", method="GET")["value"])
    eventually(lambda: jobs_settled(app))
    with app.app_context():
        assert [(status, event_id) for *_, status, event_id in bookings_of(link_id)] == [("Cancelled", None)]
    # One write each; the inbound sync may have looked the deleted event up (GET) on the way.
    assert [r["method"] for r in m365.requests("/me/events") if r["method"] != "GET"] == ["POST", "PATCH", "DELETE"]


def test_disconnect_answers_at_once_and_its_job_deletes_the_subscription_then_the_tokens(app, world, m365, connected):
    client, link_id = connected
    with app.app_context():
        integration_id = link_of(link_id).integration_id
    assert len(m365.subscriptions(USER)) == 1

    response = client.post(f"/orgs/{world.a.org}/integrations/{integration_id}/disconnect", follow_redirects=True)

    assert "Deleting 1 subscription(s) at Microsoft is queued" in response.get_data(as_text=True)
    eventually(lambda: m365.subscriptions(USER) == [], message="the subscription was not deleted at Graph")

    def tokens_gone():
        with app.app_context():
            db.session.expire_all()
            integration = db.session.get(Integration, integration_id)
            return integration.token is None and integration.connection_state == "not_connected"

    eventually(tokens_gone, message="the disconnect job did not drop the tokens")
    deletions = [r for r in m365.requests("/$batch") if r["method"] == "POST"]
    assert deletions, "the deletion went through $batch"


def _local_in_days(days, hour):
    """A wall-clock time in the organisation's zone, as the booking form takes it."""
    return in_days(days, hour)


def _utc(local):
    return local_to_utc(datetime.fromisoformat(local), ZONE)


def _as_utc(local):
    return _utc(local).strftime("%Y-%m-%dT%H:%M")
