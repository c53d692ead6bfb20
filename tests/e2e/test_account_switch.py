"""Reconnecting as another Microsoft account, and sign-ins that fail, against the stand-in.

Microsoft preselects whoever is signed in in the browser, so a Reconnect can come back as
another account by accident. Nothing may change until the admin says so, and switching
must never pass the old calendar's bookings off as deleted in Outlook.
"""

import html

import pytest

from app.extensions import db
from app.models import Booking, BookingStatus, Integration, SyncLogEntry
from app.models.integration import AUTH_DELEGATED, CONNECTION_CONNECTED
from tests.e2e.helpers import ORGANIZER, TENANT, USER, add_integration, in_days, sign_in_at_microsoft, wait_until_synced
from tests.e2e.test_delegated_mode import jobs_settled, own_link
from tests.live import eventually


def press_reconnect(client, world, portal, m365, integration_id, account, decision="accept"):
    response = client.post(f"/orgs/{world.a.org}/integrations/{integration_id}/connect")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{m365.base_url}/login/{TENANT}/oauth2/v2.0/authorize?")
    back = sign_in_at_microsoft(response.headers["Location"], account, decision)
    assert back.startswith(f"{portal}/oauth/callback?")
    return client.get(back[len(portal) :])


def events_of(m365, mailbox):
    return m365.control(f"mailboxes/{mailbox}/events", method="GET")["value"]


def booking_rows(app):
    with app.app_context():
        db.session.expire_all()
        return [
            (b.remark, b.status.name, b.channel, (b.extra or {}).get("outlook_event_id"))
            for b in db.session.scalars(db.select(Booking).order_by(Booking.id))
        ]


def integration_facts(app, integration_id):
    with app.app_context():
        db.session.expire_all()
        integration = db.session.get(Integration, integration_id)
        return integration.connection_state, integration.connected_account, integration.token.refresh_token


@pytest.fixture
def megan_connected(app, world, portal, m365, login):
    """A delegated integration connected as Megan, with one of her appointments synced and one booking pushed to her."""
    visit_start, visit_end = in_days(2, 10), in_days(2, 11)
    m365.control(
        "appointments",
        {"organizer": USER, "subject": "Customer visit", "start": visit_start, "end": visit_end, "time_zone": "UTC"},
    )
    with app.app_context():
        integration = add_integration(world, AUTH_DELEGATED)
        integration.create_calendar_entry_statuses = [db.session.get(BookingStatus, world.a.statuses["Confirmed"])]
        integration.delete_on_statuses = [db.session.get(BookingStatus, world.a.statuses["Cancelled"])]
        db.session.commit()
        integration_id = integration.id
    client = login(world.a.admin)
    assert press_reconnect(client, world, portal, m365, integration_id, USER).status_code == 302
    with app.app_context():
        link_id = own_link(integration_id).id
    wait_until_synced(app, link_id)
    saved = client.post(
        f"/orgs/{world.a.org}/bookings/new",
        data={
            "object_id": world.a.object,
            "customer_id": 0,
            "status_id": world.a.statuses["Confirmed"],
            "start_at": in_days(3, 12),
            "end_at": in_days(3, 13),
            "remark": "Team lunch",
        },
    )
    assert saved.status_code == 302, saved.get_data(as_text=True)
    eventually(lambda: any(e["subject"].startswith("Team lunch [") for e in events_of(m365, USER)))
    eventually(lambda: jobs_settled(app))
    return client, integration_id, link_id


def test_reconnecting_as_another_account_asks_first_and_keeping_changes_nothing(
    app, world, portal, m365, megan_connected
):
    client, integration_id, link_id = megan_connected
    before = (integration_facts(app, integration_id), booking_rows(app), len(m365.subscriptions(USER)))

    back = press_reconnect(client, world, portal, m365, integration_id, ORGANIZER)

    assert back.status_code == 302
    page = html.unescape(client.get(back.headers["Location"]).get_data(as_text=True))
    assert f"You signed in as {ORGANIZER}; this integration syncs {USER}'s calendar." in page
    assert "Team lunch" in page  # the event outbound wrote into Megan's calendar is listed
    assert (integration_facts(app, integration_id), booking_rows(app), len(m365.subscriptions(USER))) == before

    kept = client.post(back.headers["Location"], data={"decision": "keep"}, follow_redirects=True)

    assert f"Nothing changed: the integration still syncs {USER}'s calendar." in html.unescape(
        kept.get_data(as_text=True)
    )
    assert (integration_facts(app, integration_id), booking_rows(app), len(m365.subscriptions(USER))) == before
    assert m365.subscriptions(ORGANIZER) == []


def test_switching_accounts_unlinks_the_old_calendar_and_syncs_the_new_one_from_scratch(
    app, world, portal, m365, megan_connected
):
    client, integration_id, link_id = megan_connected
    (visit, lunch) = booking_rows(app)
    assert (visit[:3], lunch[:3]) == (
        ("Customer visit", "Confirmed", "external/outlook"),
        ("Team lunch", "Confirmed", "backoffice"),
    )
    back = press_reconnect(client, world, portal, m365, integration_id, ORGANIZER)
    confirm_url = back.headers["Location"]

    refused = client.post(confirm_url, data={"decision": "switch"})
    assert refused.status_code == 200
    assert "Choose what happens to these events" in refused.get_data(as_text=True)
    assert integration_facts(app, integration_id)[1] == USER

    switched = client.post(confirm_url, data={"decision": "switch", "old_events": "delete"}, follow_redirects=True)

    assert f"Switched to {ORGANIZER}" in html.unescape(switched.get_data(as_text=True))
    state, account, _ = integration_facts(app, integration_id)
    assert (state, account) == (CONNECTION_CONNECTED, ORGANIZER)
    # Megan's subscription and the event this product wrote for her go; her own appointment stays.
    eventually(lambda: m365.subscriptions(USER) == [], message="Megan's subscription was not deleted")
    eventually(lambda: [e["subject"] for e in events_of(m365, USER)] == ["Customer visit"])
    eventually(lambda: len(m365.subscriptions(ORGANIZER)) == 1, message="Adele's calendar was not subscribed")
    # Nothing is cancelled as deleted in Outlook: the old bookings are unlinked and keep their status.
    eventually(lambda: jobs_settled(app))
    rows = booking_rows(app)
    assert rows[0] == ("Customer visit", "Confirmed", "external/outlook", None)
    assert rows[1][:3] == ("Team lunch", "Confirmed", "backoffice")
    # The pushed booking is written into Adele's calendar instead.
    adele_lunch = eventually(lambda: [e for e in events_of(m365, ORGANIZER) if e["subject"].startswith("Team lunch")])
    assert rows[1][3] == adele_lunch[0]["id"]
    with app.app_context():
        reasons = db.session.scalars(
            db.select(SyncLogEntry.reason).where(SyncLogEntry.integration_id == integration_id)
        ).all()
        assert not [r for r in reasons if "deleted in Outlook" in r]
        assert any(f"switched from {USER}'s calendar to {ORGANIZER}'s" in r for r in reasons)

    # Adele's own appointments become bookings; one at a free time is not refused by a stale booking.
    m365.control(
        "appointments",
        {
            "organizer": ORGANIZER,
            "subject": "Board meeting",
            "start": in_days(5, 9),
            "end": in_days(5, 10),
            "time_zone": "UTC",
        },
    )
    eventually(lambda: any(row[0] == "Board meeting" and row[3] for row in booking_rows(app)))


def test_cancelling_a_reconnect_at_microsoft_keeps_the_sync_running(app, world, portal, m365, megan_connected):
    client, integration_id, link_id = megan_connected
    before = integration_facts(app, integration_id)

    back = press_reconnect(client, world, portal, m365, integration_id, USER, decision="decline")

    page = html.unescape(client.get(back.headers["Location"]).get_data(as_text=True))
    assert "Consent was declined (AADSTS65004)" in page
    assert f"The integration still syncs {USER}'s calendar" in page
    assert integration_facts(app, integration_id) == before
    # Inbound and outbound carry on without signing in again.
    m365.control(
        "appointments",
        {"organizer": USER, "subject": "Late call", "start": in_days(6, 8), "end": in_days(6, 9), "time_zone": "UTC"},
    )
    eventually(lambda: any(row[0] == "Late call" for row in booking_rows(app)))
