"""A page is decided against the bookings as its earlier events left them, although it is
read from the database once and written at its end."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
import responses
from sqlalchemy import event as sql_event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.bookings.overlap import Spans
from app.extensions import db
from app.models import Booking, SyncLogEntry
from app.models.booking import CHANNEL_BACKOFFICE
from app.sync import decision as decision_module
from app.sync import engine as engine_module
from app.sync.engine import sync_link
from tests.sync_helpers import GRAPH, at, bookings_state, delta_url, event, graph_client, make_room_link, page

ROOM = "room-a@contoso.example"
# What the refusal line says of the appointments of `sync_helpers.event`.
ORGANISER = "organiser Organiser <organiser@contoso.example>"
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


def summary_lines(app):
    """Log lines about a whole sync rather than one event."""
    with app.app_context():
        query = db.select(SyncLogEntry).where(SyncLogEntry.event_id.is_(None)).order_by(SyncLogEntry.id)
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
    assert reason.startswith(
        f"Not booked: the appointment “Second” on 2026-12-01 10:30–11:30, {ORGANISER}. "
        f"Overlaps booking {first} (Option) on Room A from 2026-12-01 10:00 to 11:00"
    )
    assert log_of(app, "ev-first") == [("create", "New appointment in Outlook.", first)]


def test_the_same_event_twice_in_one_page_makes_one_booking(app, room):
    twice = event("ev-twice", at(2, 9), at(2, 10), subject="Twice")
    summary = sync_one_page(app, room, [twice, event("ev-other", at(3, 9), at(3, 10)), twice])
    assert (summary.created, summary.skipped) == (2, 1)
    booking_id = booking_of(app, "ev-twice")
    # The repeat changes nothing: it is counted in the sync's one summary line, not logged on its own.
    assert log_of(app, "ev-twice") == [("create", "New appointment in Outlook.", booking_id)]
    assert summary_lines(app) == [("skip", "1 appointment unchanged.", None)]


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
    assert summary_lines(app) == [("skip", "2 appointments unchanged.", None)]
    with app.app_context():
        assert bookings_state("ext_ref") == before
        assert [row[6] for row in before] == ["ev-custom", "ev-more"]


@pytest.fixture
def writes_during_decide(monkeypatch):
    """Watches every call of `decide`: what it was asked, and any flush or non-read statement while it ran."""
    watched = SimpleNamespace(events=[], writes=[])
    decide = decision_module.decide

    def note_flush(session, flush_context, instances):
        if session.new or session.dirty or session.deleted:
            watched.writes.append("flush of pending ORM changes")

    def note_statement(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith("SELECT"):
            watched.writes.append(statement.split(None, 3)[:3])

    def watched_decide(event, *args, **kwargs):
        watched.events.append(event.id)
        sql_event.listen(Session, "before_flush", note_flush)
        sql_event.listen(Engine, "before_cursor_execute", note_statement)
        try:
            return decide(event, *args, **kwargs)
        finally:
            sql_event.remove(Engine, "before_cursor_execute", note_statement)
            sql_event.remove(Session, "before_flush", note_flush)

    monkeypatch.setattr(decision_module, "decide", watched_decide)
    if hasattr(engine_module, "decide"):
        monkeypatch.setattr(engine_module, "decide", watched_decide)
    return watched


def test_deciding_a_page_never_writes_although_the_page_depends_on_itself(app, world, room, writes_during_decide):
    """The cases where a decision needs what earlier decisions of its page did: the engine
    writes those between decisions, and nothing the decision calls writes at all."""
    with app.app_context():
        backoffice = Booking(
            organisation_id=world.a.org,
            object_id=world.a.object,
            status_id=world.a.statuses["Confirmed"],
            start_at=at(7, 16),
            end_at=at(7, 17),
            remark="Board",
            channel=CHANNEL_BACKOFFICE,
        )
        db.session.add(backoffice)
        db.session.commit()
        backoffice_id = backoffice.id
    sync_one_page(app, room, [event("ev-existing", at(7, 9), at(7, 10), subject="Existing")])
    writes_during_decide.events.clear()

    summary = sync_one_page(
        app,
        room,
        [
            event("ev-new", at(7, 11), at(7, 12), subject="New"),
            event("ev-clash", at(7, 11, 30), at(7, 12, 30), subject="Clash"),
            event("ev-new", at(7, 13), at(7, 14), subject="New"),
            event("ev-existing", at(7, 13, 30), at(7, 14, 30), subject="Existing"),
            event("ev-board", at(7, 16), at(7, 17), subject=f"Board [{backoffice_id}]"),
            event("ev-unknown-id", at(7, 18), at(7, 19), subject="Someone else's [987654]"),
        ],
        url=DELTA1,
        delta_link=DELTA2,
    )

    assert set(writes_during_decide.events) == {
        "ev-new",
        "ev-clash",
        "ev-existing",
        "ev-board",
        "ev-unknown-id",
    }
    assert writes_during_decide.writes == []
    assert (summary.created, summary.refused, summary.updated) == (2, 1, 3)
    new = booking_of(app, "ev-new")
    [(_, clash_reason, _)] = log_of(app, "ev-clash")
    assert clash_reason.startswith(
        f"Not booked: the appointment “Clash” on 2026-12-07 12:30–13:30, {ORGANISER}. "
        f"Overlaps booking {new} (Option) on Room A from 2026-12-07 12:00 to 13:00."
    )
    assert log_of(app, "ev-new")[1:] == [("update", "Outlook changed the time.", new)]
    [(action, moved_reason, _)] = log_of(app, "ev-existing")[1:]
    assert action == "update" and f"Applied despite: Overlaps booking {new}" in moved_reason
    assert booking_of(app, "ev-board") == backoffice_id
    with app.app_context():
        assert [(row[2], row[6]) for row in bookings_state()] == [
            (at(7, 13), "ev-new"),
            (at(7, 13, 30), "ev-existing"),
            (at(7, 16), "ev-board"),
            (at(7, 18), "ev-unknown-id"),
        ]


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
