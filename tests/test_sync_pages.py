"""A page is decided against the bookings as its earlier events left them, although it is
read from the database once and written at its end."""

from datetime import timedelta

import pytest
import responses

from app.bookings.overlap import Spans
from app.extensions import db
from app.models import Booking, SyncLogEntry
from app.sync.engine import sync_link
from tests.sync_helpers import GRAPH, at, bookings_state, delta_url, event, graph_client, make_room_link, page

ROOM = "room-a@contoso.example"
DELTA1 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-1"
DELTA2 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-2"


def sync_one_page(app, link_id, items, url=None, delta_link=DELTA1):
    with responses.RequestsMock() as mock:
        mock.get(url or delta_url(ROOM), json=page(items, delta_link=delta_link))
        with app.app_context():
            return sync_link(link_id, client=graph_client(max_attempts=1))


def log_of(app, event_id):
    with app.app_context():
        query = db.select(SyncLogEntry).where(SyncLogEntry.event_id == event_id).order_by(SyncLogEntry.id)
        return [(entry.action, entry.reason, entry.booking_id) for entry in db.session.scalars(query)]


def booking_of(app, event_id, field="outlook_event_id"):
    with app.app_context():
        return next(b.id for b in db.session.scalars(db.select(Booking)) if b.extra.get(field) == event_id)


@pytest.fixture
def room(app, world, clock):
    with app.app_context():
        return make_room_link(world).id


def test_an_appointment_overlapping_one_booked_earlier_in_the_page_is_refused(app, room):
    summary = sync_one_page(
        app,
        room,
        [
            event("ev-first", at(1, 9), at(1, 10), subject="First"),
            event("ev-second", at(1, 9, 30), at(1, 10, 30), subject="Second"),
            event("ev-after", at(1, 10), at(1, 11), subject="Touches the first"),
        ],
    )
    assert (summary.created, summary.refused) == (2, 1)
    first = booking_of(app, "ev-first")
    [(action, reason, booking_id)] = log_of(app, "ev-second")
    assert (action, booking_id) == ("refuse", None)
    assert reason.startswith(f"Not booked: Overlaps booking {first} (Option) on Room A from 2026-12-01 10:00 to 11:00")
    assert log_of(app, "ev-first") == [("create", "New appointment in Outlook.", first)]


def test_the_same_event_twice_in_one_page_makes_one_booking(app, room):
    twice = event("ev-twice", at(2, 9), at(2, 10), subject="Twice")
    summary = sync_one_page(app, room, [twice, event("ev-other", at(3, 9), at(3, 10)), twice])
    assert (summary.created, summary.skipped) == (2, 1)
    booking_id = booking_of(app, "ev-twice")
    assert log_of(app, "ev-twice") == [
        ("create", "New appointment in Outlook.", booking_id),
        ("skip", "Unchanged.", booking_id),
    ]


def test_a_time_freed_earlier_in_the_page_can_be_booked(app, room):
    sync_one_page(app, room, [event("ev-moving", at(4, 9), at(4, 10), subject="Moving")])
    summary = sync_one_page(
        app,
        room,
        [
            event("ev-moving", at(4, 14), at(4, 15), subject="Moving"),
            event("ev-newcomer", at(4, 9), at(4, 10), subject="Newcomer"),
        ],
        url=DELTA1,
        delta_link=DELTA2,
    )
    assert (summary.updated, summary.created, summary.refused) == (1, 1, 0)
    with app.app_context():
        assert [(row[2], row[3], row[6]) for row in bookings_state()] == [
            (at(4, 9), at(4, 10), "ev-newcomer"),
            (at(4, 14), at(4, 15), "ev-moving"),
        ]


def test_an_overlap_caused_by_a_move_later_in_the_page_is_caught(app, room):
    sync_one_page(app, room, [event("ev-early", at(5, 9), at(5, 10), subject="Early")])
    summary = sync_one_page(
        app,
        room,
        [
            event("ev-late", at(5, 14), at(5, 15), subject="Late"),
            event("ev-early", at(5, 14, 30), at(5, 15, 30), subject="Early"),
        ],
        url=DELTA1,
        delta_link=DELTA2,
    )
    # Bookings made through this integration follow Outlook even into an overlap.
    assert (summary.created, summary.updated) == (1, 1)
    [(action, reason, _)] = log_of(app, "ev-early")[1:]
    assert action == "update" and f"Applied despite: Overlaps booking {booking_of(app, 'ev-late')}" in reason


def test_a_custom_booking_field_keeps_the_link_and_a_replay_changes_nothing(app, world, clock):
    with app.app_context():
        link_id = make_room_link(world, ires_field="ext_ref").id
    items = [event("ev-custom", at(6, 9), at(6, 10), subject="Custom"), event("ev-more", at(6, 11), at(6, 12))]
    assert sync_one_page(app, link_id, items).created == 2
    with app.app_context():
        before = bookings_state("ext_ref")
    replay = sync_one_page(app, link_id, items)
    assert (replay.created, replay.skipped) == (0, 2)
    with app.app_context():
        assert bookings_state("ext_ref") == before
        assert [row[6] for row in before] == ["ev-custom", "ev-more"]


def test_spans_overlap_only_when_they_share_time():
    spans = Spans()
    spans.put("long", at(1, 0), at(10, 0))
    spans.put("short", at(12, 9), at(12, 10))
    assert list(spans.overlapping(at(9, 23), at(10, 1))) == ["long"]
    assert list(spans.overlapping(at(12, 10), at(12, 11))) == []  # touching is not overlapping
    assert list(spans.overlapping(at(12, 8), at(12, 9, 1))) == ["short"]
    spans.put("short", at(12, 10), at(12, 11))
    assert list(spans.overlapping(at(12, 8), at(12, 9, 1))) == []
    spans.drop("long")
    assert list(spans.overlapping(at(1, 0), at(12, 10) + timedelta(seconds=1))) == ["short"]
