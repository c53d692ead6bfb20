"""Inbound sync end to end through `responses`: what ends up in the bookings."""

from datetime import timedelta

import pytest
import responses
from responses import matchers
from sqlalchemy import event as event_module

from app.extensions import db
from app.models import Booking, BookingStatus, CalendarLink, SyncLogEntry
from app.models.calendar_link import SYNC_ERROR, SYNC_OK
from app.sync.engine import sync_link
from tests.sync_helpers import (
    GRAPH,
    at,
    bookings_state,
    delta_url,
    event,
    graph_client,
    make_room_link,
    page,
    removed,
    window_is_about_now,
)

ROOM = "room-a@contoso.example"
PAGE2 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$skiptoken=page-2"
PAGE3 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$skiptoken=page-3"
DELTA1 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-1"
DELTA2 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-2"


def first_round_pages():
    return [
        page(
            [
                event("ev-single", at(1, 9), at(1, 10), subject="Board meeting"),
                event("ev-occ-1", at(2, 9), at(2, 10), subject="Weekly", type="occurrence", seriesMasterId="ev-master"),
                event("ev-master", at(2, 9), at(2, 10), subject="Weekly", type="seriesMaster"),
            ],
            next_link=PAGE2,
        ),
        page(
            [
                event("ev-exc-2", at(9, 13), at(9, 14), subject="Weekly", type="exception", seriesMasterId="ev-master"),
                event("ev-private", at(3, 9), at(3, 10), subject="Doctor", sensitivity="private"),
                event("ev-single", at(1, 9), at(1, 10), subject="Board meeting"),  # duplicate within a round
            ],
            next_link=PAGE3,
        ),
        page(
            [
                event(
                    "ev-allday",
                    at(4, 0),
                    at(5, 0),
                    subject="Closed",
                    isAllDay=True,
                ),
                event("ev-cancelled", at(6, 9), at(6, 10), subject="Canceled: Old", isCancelled=True),
            ],
            delta_link=DELTA1,
        ),
    ]


def register_first_round(mock, pages=None):
    pages = pages or first_round_pages()
    mock.get(
        delta_url(ROOM),
        json=pages[0],
        match=[
            matchers.query_param_matcher(
                {"startDateTime": "2026-08-27T12:00:00Z", "endDateTime": "2027-11-25T12:00:00Z"}
            ),
            matchers.header_matcher({"Prefer": 'IdType="ImmutableId", outlook.timezone="UTC", odata.maxpagesize=100'}),
        ],
    )
    mock.get(PAGE2, json=pages[1])
    mock.get(PAGE3, json=pages[2])


@pytest.fixture
def room(app, world, clock):
    with app.app_context():
        return make_room_link(world).id


def run(app, link_id, **options):
    with app.app_context():
        return sync_link(link_id, client=graph_client(max_attempts=1), **options)


def state(app):
    with app.app_context():
        return bookings_state()


def test_a_first_sync_over_several_pages_creates_exactly_the_right_bookings(app, room, clock):
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        summary = run(app, room)

    assert (summary.pages, summary.created) == (3, 5)
    with app.app_context():
        bookings = {b.extra["outlook_event_id"]: b for b in db.session.scalars(db.select(Booking))}
        assert set(bookings) == {"ev-single", "ev-occ-1", "ev-exc-2", "ev-private", "ev-allday"}
        assert bookings["ev-single"].remark == "Board meeting"
        assert bookings["ev-single"].channel == "external/outlook"
        assert bookings["ev-single"].status.name == "Option"
        assert bookings["ev-private"].remark == "Private appointment"
        # 4 December in Amsterdam: local midnight to midnight.
        assert (bookings["ev-allday"].start_at, bookings["ev-allday"].end_at) == (at(3, 23), at(4, 23))
        link = db.session.get(CalendarLink, room)
        assert link.delta_link == DELTA1
        assert window_is_about_now(link, clock.now)
        assert (link.last_sync_status, link.last_sync_error, link.last_sync_at) == (SYNC_OK, None, clock.now)
        actions = db.session.scalars(db.select(SyncLogEntry.action).where(SyncLogEntry.event_id == "ev-master")).all()
        assert actions == ["skip"]


def test_an_incremental_round_applies_updates_and_removals(app, room, clock):
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        run(app, room)
    clock.advance(timedelta(minutes=10))
    with responses.RequestsMock() as mock:
        mock.get(
            DELTA1,
            json=page(
                [
                    event("ev-single", at(1, 14), at(1, 15), subject="Board meeting"),
                    removed("ev-occ-1"),
                    removed("ev-allday"),
                    event("ev-new", at(7, 9), at(7, 10), subject="New"),
                ],
                delta_link=DELTA2,
            ),
        )
        # Deleted for real:
        mock.get(f"{GRAPH}/users/{ROOM}/events/ev-occ-1", status=404, json={"error": {"code": "ErrorItemNotFound"}})
        # Reported removed because it moved out of the window: it is still there.
        mock.get(
            f"{GRAPH}/users/{ROOM}/events/ev-allday",
            json=event("ev-allday", at(1, 0) + timedelta(days=400), at(1, 1) + timedelta(days=400), subject="Closed"),
        )
        summary = run(app, room)

    assert (summary.created, summary.updated, summary.cancelled) == (1, 2, 1)
    with app.app_context():
        by_remark = {b.remark: b for b in db.session.scalars(db.select(Booking))}
        assert (by_remark["Board meeting"].start_at, by_remark["Board meeting"].end_at) == (at(1, 14), at(1, 15))
        assert by_remark["Closed"].start_at == at(1, 0) + timedelta(days=400)
        assert db.session.get(CalendarLink, room).delta_link == DELTA2
        cancelled = db.session.scalars(db.select(Booking).where(Booking.status.has(name="Cancelled"))).all()
        assert [b.extra.get("outlook_event_id") for b in cancelled] == [None]  # cancelled and unlinked


def test_a_lock_status_survives_a_deletion(app, room, world):
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        run(app, room)
    with app.app_context():
        booking = db.session.scalar(db.select(Booking).where(Booking.remark == "Board meeting"))
        invoiced = db.session.get(BookingStatus, world.a.statuses["Invoiced"])
        booking.status = invoiced
        db.session.get(CalendarLink, room).integration.lock_statuses = [invoiced]
        db.session.commit()
    with responses.RequestsMock() as mock:
        mock.get(DELTA1, json=page([removed("ev-single")], delta_link=DELTA2))
        mock.get(f"{GRAPH}/users/{ROOM}/events/ev-single", status=404, json={"error": {"code": "ErrorItemNotFound"}})
        run(app, room)
    with app.app_context():
        booking = db.session.scalar(db.select(Booking).where(Booking.remark == "Board meeting"))
        assert (booking.status.name, booking.extra["outlook_event_id"]) == ("Invoiced", "ev-single")
        reasons = db.session.scalars(
            db.select(SyncLogEntry.reason).where(SyncLogEntry.action == "skip", SyncLogEntry.event_id == "ev-single")
        ).all()
        assert any("Invoiced is a lock status" in reason for reason in reasons)


def test_replaying_the_same_pages_changes_nothing(app, room):
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        run(app, room)
    before = state(app)
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        summary = run(app, room, full=True)
    assert state(app) == before
    assert (summary.created, summary.updated, summary.cancelled) == (0, 0, 0)


def busy_room_pages(count, per_page):
    """`count` appointments three hours apart, then a series master, `per_page` to a page."""
    items = [
        event(f"ev-{n:04d}", at(1, 0) + timedelta(hours=3 * n), at(1, 0) + timedelta(hours=3 * n, minutes=45))
        for n in range(count)
    ]
    items.append(event("ev-master", at(2, 9), at(2, 10), subject="Weekly", type="seriesMaster"))
    chunks = [items[start : start + per_page] for start in range(0, len(items), per_page)]
    links = [delta_url(ROOM)] + [f"{delta_url(ROOM)}?$skiptoken=busy-{number}" for number in range(1, len(chunks))]
    last = len(chunks) - 1
    return [
        (link, page(chunk, next_link=None if n == last else links[n + 1], delta_link=DELTA1 if n == last else None))
        for n, (link, chunk) in enumerate(zip(links, chunks, strict=True))
    ]


def sync_log_after(app, entry_id):
    with app.app_context():
        query = db.select(SyncLogEntry).where(SyncLogEntry.id > entry_id).order_by(SyncLogEntry.id)
        return [(entry.action, entry.reason, entry.event_id) for entry in db.session.scalars(query)]


def test_a_full_sync_of_unchanged_appointments_logs_one_summary_line_instead_of_one_per_appointment(app, room, clock):
    pages = busy_room_pages(1200, per_page=500)
    with responses.RequestsMock() as mock:
        for link, body in pages:
            mock.get(link, json=body)
        assert run(app, room).created == 1200
    assert not [row for row in sync_log_after(app, 0) if "unchanged" in row[1]], "nothing was unchanged"

    clock.advance(timedelta(hours=1))
    with app.app_context():
        before = db.session.scalar(db.select(db.func.max(SyncLogEntry.id)))
    with responses.RequestsMock() as mock:
        for link, body in pages:
            mock.get(link, json=body)
        replay = run(app, room, full=True)

    assert (replay.pages, replay.skipped, replay.created, replay.updated, replay.cancelled) == (3, 1201, 0, 0, 0)
    assert sync_log_after(app, before) == [
        ("skip", "Series master: its occurrences are synced one by one.", "ev-master"),
        ("skip", "1,200 appointments unchanged.", None),
    ]


def test_an_expired_delta_token_leads_to_a_full_sync_with_reconciliation(app, room):
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        run(app, room)
    expired = {"error": {"code": "SyncStateNotFound", "message": "The sync state generation is not found."}}
    pages = first_round_pages()
    pages[0]["value"] = [e for e in pages[0]["value"] if e["id"] != "ev-occ-1"]  # deleted while the token was lost
    with responses.RequestsMock() as mock:
        mock.get(DELTA1, status=410, json=expired)
        register_first_round(mock, pages)
        mock.get(f"{GRAPH}/users/{ROOM}/events/ev-occ-1", status=404, json={"error": {"code": "ErrorItemNotFound"}})
        summary = run(app, room)
    assert summary.full and summary.cancelled == 1
    with app.app_context():
        cancelled = db.session.scalar(db.select(Booking).where(Booking.status.has(name="Cancelled")))
        assert cancelled.start_at == at(2, 9)
        assert db.session.get(CalendarLink, room).delta_link == DELTA1
        reasons = db.session.scalars(db.select(SyncLogEntry.reason).where(SyncLogEntry.action == "resync")).all()
        assert reasons and "SyncStateNotFound" in reasons[0]


def test_a_first_round_started_again_still_cancels_what_vanished_meanwhile(app, room):
    expired = {"error": {"code": "SyncStateNotFound", "message": "The sync state generation is not found."}}
    first, again = first_round_pages(), first_round_pages()
    again[0]["value"] = [e for e in again[0]["value"] if e["id"] != "ev-occ-1"]  # deleted before the restart
    with responses.RequestsMock() as mock:
        window = matchers.query_param_matcher(
            {"startDateTime": "2026-08-27T12:00:00Z", "endDateTime": "2027-11-25T12:00:00Z"}
        )
        mock.get(delta_url(ROOM), json=first[0], match=[window])
        mock.get(delta_url(ROOM), json=again[0], match=[window])
        mock.get(PAGE2, status=410, json=expired)  # the first attempt's page link went stale
        mock.get(PAGE2, json=again[1])
        mock.get(PAGE3, json=again[2])
        mock.get(f"{GRAPH}/users/{ROOM}/events/ev-occ-1", status=404, json={"error": {"code": "ErrorItemNotFound"}})
        summary = run(app, room)
    assert summary.cancelled == 1
    with app.app_context():
        cancelled = db.session.scalar(db.select(Booking).where(Booking.status.has(name="Cancelled")))
        assert cancelled.start_at == at(2, 9)
        assert db.session.get(CalendarLink, room).delta_link == DELTA1


def test_a_room_s_first_round_keeps_no_list_of_seen_appointments(app, room):
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        recorded = []
        with app.app_context():
            engine = db.engine

        def spy(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("INSERT INTO SYNC_SEEN_EVENTS"):
                recorded.append(statement)

        event_module.listen(engine, "before_cursor_execute", spy)
        try:
            summary = run(app, room)
        finally:
            event_module.remove(engine, "before_cursor_execute", spy)
    assert summary.full and summary.created == 5
    assert recorded == []


def test_a_failure_between_pages_keeps_the_token_and_a_rerun_ends_in_the_same_state(app, world, clock):
    with app.app_context():
        interrupted = make_room_link(world).id
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_first_round(mock)
        mock.replace(responses.GET, PAGE2, status=500, json={"error": {"code": "generalException"}})
        with pytest.raises(Exception, match="generalException"):
            run(app, interrupted)
    with app.app_context():
        link = db.session.get(CalendarLink, interrupted)
        assert link.delta_link is None
        assert link.last_sync_status == SYNC_ERROR and "generalException" in link.last_sync_error
        assert len(bookings_state()) == 2  # the first page was committed (its series master is no booking)
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        run(app, interrupted)
    after_rerun = state(app)

    # The same pages in one uninterrupted run, on a clean database, end identically.
    with app.app_context():
        db.session.execute(db.delete(SyncLogEntry))
        db.session.execute(db.delete(Booking))
        db.session.get(CalendarLink, interrupted).delta_link = None
        db.session.commit()
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        run(app, interrupted)
    assert state(app) == after_rerun
    with app.app_context():
        assert db.session.get(CalendarLink, interrupted).delta_link == DELTA1


def test_an_event_this_product_created_is_recognised_by_its_stored_id(app, room, world):
    with app.app_context():
        ours = Booking(
            organisation_id=world.a.org,
            object_id=world.a.object,
            status_id=world.a.statuses["Confirmed"],
            start_at=at(1, 9),
            end_at=at(1, 10),
            remark="Board meeting",
            extra={"outlook_event_id": "ev-single"},
        )
        db.session.add(ours)
        db.session.commit()
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        run(app, room)
    with app.app_context():
        matching = db.session.scalars(db.select(Booking).where(Booking.start_at == at(1, 9))).all()
        assert [b.channel for b in matching] == ["backoffice"]


def test_an_overlap_with_a_backoffice_booking_is_refused_and_logged(app, room, world):
    with app.app_context():
        db.session.add(
            Booking(
                organisation_id=world.a.org,
                object_id=world.a.object,
                status_id=world.a.statuses["Confirmed"],
                start_at=at(1, 9, 30),
                end_at=at(1, 11),
                remark="Already booked",
            )
        )
        db.session.commit()
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        summary = run(app, room)
    assert summary.refused == 2  # the event and its duplicate on page 2
    with app.app_context():
        entry = db.session.scalar(
            db.select(SyncLogEntry).where(SyncLogEntry.event_id == "ev-single", SyncLogEntry.action == "refuse")
        )
        assert entry.is_error and "Overlaps booking" in entry.reason


def test_changing_the_window_starts_a_full_round(app, room):
    with responses.RequestsMock() as mock:
        register_first_round(mock)
        run(app, room)
    with app.app_context():
        db.session.get(CalendarLink, room).integration.window_future_days = 30
        db.session.commit()
    with responses.RequestsMock() as mock:
        mock.get(
            delta_url(ROOM),
            json=page([], delta_link=DELTA2),
            match=[
                matchers.query_param_matcher(
                    {"startDateTime": "2026-08-27T12:00:00Z", "endDateTime": "2026-12-25T12:00:00Z"}
                )
            ],
        )
        for event_id in ("ev-single", "ev-occ-1", "ev-exc-2", "ev-private", "ev-allday"):
            mock.get(f"{GRAPH}/users/{ROOM}/events/{event_id}", json=event(event_id, at(1, 9), at(1, 10)))
        summary = run(app, room)
    assert summary.full


def test_sync_command_runs_each_link_and_reports_failures(app, world, clock, monkeypatch):
    with app.app_context():
        good = make_room_link(world, upn="good@contoso.example")
        bad = CalendarLink(integration_id=good.integration_id, mailbox="bad@contoso.example", object_id=world.a.object)
        db.session.add(bad)
        db.session.commit()
        good_id = good.id

    from app.graph import tokens

    with responses.RequestsMock() as mock:
        mock.get(delta_url("good@contoso.example"), json=page([event("e1", at(1, 9), at(1, 10))], delta_link=DELTA1))
        mock.get(
            delta_url("bad@contoso.example"),
            status=403,
            json={"error": {"code": "ErrorAccessDenied", "message": "Access to OData is disabled."}},
        )
        monkeypatch.setattr(tokens, "graph_client_for", lambda integration: graph_client(max_attempts=1))
        result = app.test_cli_runner().invoke(args=["sync", "run"])
    assert result.exit_code == 1
    assert f"link {good_id} (good@contoso.example): page 1: pages 1, created 1" in result.output
    assert "ErrorAccessDenied" in result.output
    assert "Summary: 2 link(s), 1 failed" in result.output
    with app.app_context():
        statuses = dict(db.session.execute(db.select(CalendarLink.mailbox, CalendarLink.last_sync_status)).all())
        assert statuses == {"good@contoso.example": "ok", "bad@contoso.example": "error"}


def test_a_token_refusal_is_shown_on_the_link_as_microsoft_said_it(app, room, monkeypatch):
    from app.graph import tokens

    def refused(integration):
        raise tokens.ReconnectRequired("Consent was revoked (AADSTS50173)", aadsts=50173)

    monkeypatch.setattr(tokens, "graph_client_for", refused)
    with app.app_context(), pytest.raises(tokens.ReconnectRequired):
        sync_link(room)
    with app.app_context():
        assert db.session.get(CalendarLink, room).last_sync_error == "Consent was revoked (AADSTS50173)"


def test_a_removed_event_id_is_escaped_when_it_is_looked_up(app, room):
    odd = "AAMk/x+y="
    with responses.RequestsMock() as mock:
        mock.get(delta_url(ROOM), json=page([event(odd, at(1, 9), at(1, 10))], delta_link=DELTA1))
        run(app, room)
    with responses.RequestsMock() as mock:
        mock.get(DELTA1, json=page([removed(odd)], delta_link=DELTA2))
        mock.get(
            f"{GRAPH}/users/{ROOM}/events/AAMk%2Fx%2By%3D", status=404, json={"error": {"code": "ErrorItemNotFound"}}
        )
        assert run(app, room).cancelled == 1
