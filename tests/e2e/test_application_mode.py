"""Application mode end to end: rooms read with app-only tokens, kept current by notifications and polling."""

import re
import time
from datetime import timedelta

from app.clock import local_to_utc
from app.extensions import db
from app.jobs.handlers import SYNC_LINK, enqueue_link_sync
from app.models import CalendarLink, Integration, Job, SyncLogEntry
from app.models.integration import AUTH_APPLICATION, CONNECTION_CONNECTED
from app.scheduler.periodic import poll_stale_links
from app.subscriptions.jobs import activate_link, create_missing_subscriptions, renew_subscriptions
from tests.e2e.helpers import (
    DENIED_ROOM,
    ROOMS,
    add_integration,
    add_objects,
    bookings_of,
    connect_rooms,
    in_days,
    link_of,
    utc,
    wait_until_synced,
)
from tests.live import eventually


def in_app(app, function, *args):
    with app.app_context():
        return function(*args)


def test_test_connection_then_the_first_sync_books_every_room(app, world, portal, m365, login, moved_clock):
    board, _ = m365.appointment(ROOMS[0], "Board meeting", in_days(1, 9), in_days(1, 10))
    budget, _ = m365.appointment(ROOMS[0], "Budget", in_days(2, 13), in_days(2, 14), body="Bring the figures")
    m365.appointment(ROOMS[1], "Stand-up", in_days(1, 8), in_days(1, 8, 15), recurrence={"type": "daily", "count": 4})
    closed_day = in_days(5, 0)[:10]
    m365.appointment(ROOMS[2], "Closed", f"{closed_day}T00:00", in_days(6, 0), is_all_day=True)
    m365.appointment(DENIED_ROOM, "Secret", in_days(1, 9), in_days(1, 10))
    with app.app_context():
        integration = add_integration(world, AUTH_APPLICATION)
        links = {}
        object_ids = add_objects(world.a.org, "Room 1", "Room 2", "Room 3", "Vault")
        for room, object_id in zip([*ROOMS, DENIED_ROOM], object_ids, strict=True):
            link = CalendarLink(integration_id=integration.id, mailbox=room, object_id=object_id)
            db.session.add(link)
            db.session.flush()
            activate_link(link.id)  # what adding a room in the portal does
            links[room] = link.id
        db.session.commit()
        integration_id = integration.id

    # The rooms' first syncs run at once: the app-only token is all they need.
    def jobs_settled():
        with app.app_context():
            states = db.session.scalars(db.select(Job.state)).all()
            return all(state == "failed" for state in states)

    eventually(jobs_settled, message="the first syncs did not finish")
    with app.app_context():
        assert bookings_of(links[ROOMS[0]]) == [
            ("Board meeting", utc(in_days(1, 9)), utc(in_days(1, 10)), "Confirmed", board),
            ("Budget", utc(in_days(2, 13)), utc(in_days(2, 14)), "Confirmed", budget),
        ]
        stand_ups = bookings_of(links[ROOMS[1]])
        assert [start for _, start, _, _, _ in stand_ups] == [utc(in_days(day, 8)) for day in (1, 2, 3, 4)]
        assert len({event_id for *_, event_id in stand_ups}) == 4
        closed = bookings_of(links[ROOMS[2]])
        midnight = local_to_utc(utc(f"{closed_day}T00:00").replace(tzinfo=None), "Europe/Amsterdam")
        assert [(start, end) for _, start, end, _, _ in closed] == [(midnight, midnight + timedelta(days=1))]
        vault = link_of(links[DENIED_ROOM])
        assert vault.last_sync_status == "error" and "Access to OData is disabled" in vault.last_sync_error
        assert bookings_of(links[DENIED_ROOM]) == []

    # Test connection queues the test; the portal's job runner runs it while the page refreshes itself.
    client = login(world.a.admin)
    report_url = f"/orgs/{world.a.org}/integrations/{integration_id}/test"
    clicked = client.post(report_url)
    assert clicked.status_code == 302 and clicked.headers["Location"] == report_url

    def report_page():
        html = client.get(report_url).get_data(as_text=True)
        return None if 'http-equiv="refresh"' in html else html

    html = eventually(report_page, message="the connection test did not finish")
    assert "3 ok" in html and "1 access denied" in html and DENIED_ROOM in html
    with app.app_context():
        assert db.session.get(Integration, integration_id).connection_state == CONNECTION_CONNECTED

    # Rooms added before the integration was connected are subscribed by the scheduler's
    # next run of create_missing_subscriptions (their subscribe jobs found it not connected).
    in_app(app, create_missing_subscriptions, moved_clock.now())
    eventually(lambda: len(m365.subscriptions()) == 3 and jobs_settled())
    assert sorted(s["mailbox"] for s in m365.subscriptions()) == ROOMS
    with app.app_context():
        assert "Access to OData is disabled" in link_of(links[DENIED_ROOM]).subscription_error


def test_an_outlook_change_reaches_its_booking_through_a_notification(app, world, portal, m365):
    with app.app_context():
        links = connect_rooms(world, ROOMS[:2])
    for link_id in links.values():
        wait_until_synced(app, link_id)
    room = links[ROOMS[1]]

    started = time.monotonic()
    event_id, uid = m365.appointment(ROOMS[1], "Workshop", in_days(3, 10), in_days(3, 12), body="Six people")
    eventually(lambda: in_app(app, bookings_of, room), timeout=5)
    assert time.monotonic() - started < 5
    assert in_app(app, bookings_of, room) == [
        ("Workshop", utc(in_days(3, 10)), utc(in_days(3, 12)), "Confirmed", event_id)
    ]
    delivered = eventually(lambda: m365.deliveries("delivered"))
    assert {d["status"] for d in delivered} == {202}  # the webhook queued the work and answered at once

    m365.control(f"appointments/{uid}/move", {"start": in_days(4, 14), "end": in_days(4, 15, 30), "time_zone": "UTC"})
    moved = ("Workshop", utc(in_days(4, 14)), utc(in_days(4, 15, 30)), "Confirmed", event_id)
    eventually(lambda: in_app(app, bookings_of, room) == [moved], timeout=5)

    m365.control(f"appointments/{uid}/cancel")
    cancelled = ("Workshop", utc(in_days(4, 14)), utc(in_days(4, 15, 30)), "Cancelled", None)
    eventually(lambda: in_app(app, bookings_of, room) == [cancelled], timeout=5)
    assert in_app(app, bookings_of, links[ROOMS[0]]) == []


def test_subscriptions_are_renewed_before_they_expire_and_recreated_when_removed(app, world, portal, m365, moved_clock):
    with app.app_context():
        links = connect_rooms(world, ROOMS[:2])
    for link_id in links.values():
        wait_until_synced(app, link_id)

    moved_clock.advance(timedelta(days=1, hours=12))  # within two days of the three-day expiry
    assert in_app(app, renew_subscriptions, moved_clock.now()) == 2
    expected = moved_clock.now() + timedelta(days=3)

    def renewal_batches():
        return [r for r in m365.requests("$batch") if r["method"] == "POST"]

    # The periodic run queues one renewal job for the integration; a job thread sends it.
    eventually(lambda: len(renewal_batches()) == 1, timeout=5)

    def renewed(link_id):
        return in_app(app, lambda: link_of(link_id).subscription_expires_at) > expected - timedelta(seconds=5)

    eventually(lambda: all(renewed(link_id) for link_id in links.values()), timeout=5)
    assert len(renewal_batches()) == 1  # both renewals in one $batch
    by_mailbox = {s["mailbox"]: s for s in m365.subscriptions()}
    with app.app_context():
        for room, link_id in links.items():
            link = link_of(link_id)
            assert abs(link.subscription_expires_at - expected) < timedelta(seconds=5)
            stand_in_expiry = utc(by_mailbox[room]["expires_at"][:19])
            assert abs(stand_in_expiry - link.subscription_expires_at) < timedelta(seconds=1)

    # Graph asks for reauthorization: the portal renews (a PATCH reauthorizes too).
    first = by_mailbox[ROOMS[0]]["id"]
    m365.control(f"subscriptions/{first}/lifecycle", {"event": "reauthorizationRequired"})
    eventually(lambda: [r for r in m365.requests(f"subscriptions/{first}") if r["method"] == "PATCH"])

    # Graph removed a subscription: the portal creates a new one and catches up.
    second = by_mailbox[ROOMS[1]]["id"]
    m365.control(f"subscriptions/{second}/lifecycle", {"event": "subscriptionRemoved"})

    def recreated():
        with app.app_context():
            link = link_of(links[ROOMS[1]])
            return link.subscription_id not in (None, second) and link.subscription_id

    new_id = eventually(recreated)
    assert {s["id"] for s in m365.subscriptions(ROOMS[1])} == {new_id}


def test_polling_catches_what_dropped_notifications_missed(app, world, portal, m365, moved_clock):
    with app.app_context():
        links = connect_rooms(world, [ROOMS[0]])
    link_id = wait_until_synced(app, links[ROOMS[0]]).id
    m365.control("notifications", {"drop": True, "mailbox": ROOMS[0]})

    event_id, _ = m365.appointment(ROOMS[0], "Unannounced", in_days(2, 9), in_days(2, 10))
    eventually(lambda: m365.deliveries("dropped"))
    with app.app_context():
        assert db.session.scalar(db.select(Job).where(Job.kind == SYNC_LINK, Job.state == "queued")) is None
        assert bookings_of(link_id) == []

    moved_clock.advance(timedelta(minutes=31))
    assert in_app(app, poll_stale_links, moved_clock.now()) == [link_id]
    expected = [("Unannounced", utc(in_days(2, 9)), utc(in_days(2, 10)), "Confirmed", event_id)]
    eventually(lambda: in_app(app, bookings_of, link_id) == expected, timeout=5)


def test_throttling_in_the_middle_of_a_round_loses_nothing(app, world, portal, m365, moved_clock):
    expected = []
    for day in range(1, 11):
        event_id, _ = m365.appointment(ROOMS[0], f"Meeting {day}", in_days(day, 9), in_days(day, 10))
        expected.append((f"Meeting {day}", utc(in_days(day, 9)), utc(in_days(day, 10)), "Confirmed", event_id))
    # Pages 1 and 2 pass; page 3 is refused more often than the Graph client retries.
    m365.control("throttle", {"mailbox": ROOMS[0], "skip": 2, "count": 6, "retry_after": 0.01})
    with app.app_context():
        link_id = connect_rooms(world, [ROOMS[0]])[ROOMS[0]]

    def waiting_for_a_retry():
        with app.app_context():
            link = link_of(link_id)
            retry = db.session.scalar(db.select(Job).where(Job.kind == SYNC_LINK, Job.state == "queued"))
            return retry is not None and link.last_sync_status == "error" and link.last_sync_error

    error = eventually(waiting_for_a_retry)
    assert re.search(r"429|TooManyRequests", error)
    with app.app_context():
        assert len(bookings_of(link_id)) == 6  # the two pages before the throttling are kept

    moved_clock.advance(timedelta(minutes=2))  # past the job's backoff
    wait_until_synced(app, link_id)
    assert in_app(app, bookings_of, link_id) == expected
    assert len([r for r in m365.requests("calendarView/delta") if r["status"] == 429]) == 6


def test_an_expired_delta_token_ends_in_a_full_sync_that_reconciles(app, world, portal, m365):
    kept, _ = m365.appointment(ROOMS[0], "Kept", in_days(1, 9), in_days(1, 10))
    deleted, deleted_uid = m365.appointment(ROOMS[0], "Deleted", in_days(2, 9), in_days(2, 10))
    moved, moved_uid = m365.appointment(ROOMS[0], "Moved", in_days(3, 9), in_days(3, 10))
    with app.app_context():
        link_id = connect_rooms(world, [ROOMS[0]])[ROOMS[0]]
    wait_until_synced(app, link_id)

    # Changes nobody hears of, then Exchange forgets the sync state.
    m365.control("notifications", {"drop": True, "mailbox": ROOMS[0]})
    m365.control(f"appointments/{deleted_uid}", method="DELETE")
    m365.control(f"appointments/{moved_uid}/move", {"start": in_days(3, 15), "end": in_days(3, 16), "time_zone": "UTC"})
    added, _ = m365.appointment(ROOMS[0], "Added", in_days(4, 9), in_days(4, 10))
    m365.control(f"mailboxes/{ROOMS[0]}/expire-delta")

    rounds_before = len(m365.requests("calendarView/delta"))
    with app.app_context():
        enqueue_link_sync(link_id)
        db.session.commit()
    expected = [
        ("Kept", utc(in_days(1, 9)), utc(in_days(1, 10)), "Confirmed", kept),
        ("Deleted", utc(in_days(2, 9)), utc(in_days(2, 10)), "Cancelled", None),
        ("Moved", utc(in_days(3, 15)), utc(in_days(3, 16)), "Confirmed", moved),
        ("Added", utc(in_days(4, 9)), utc(in_days(4, 10)), "Confirmed", added),
    ]
    eventually(lambda: in_app(app, bookings_of, link_id) == expected, timeout=5)
    this_sync = m365.requests("calendarView/delta")[rounds_before:]
    assert [r["status"] for r in this_sync if "deltatoken" in r["query"]] == [410]
    with app.app_context():
        actions = db.session.scalars(db.select(SyncLogEntry.action).where(SyncLogEntry.link_id == link_id)).all()
        assert "resync" in actions
