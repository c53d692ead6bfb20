"""Two saves of overlapping bookings on one object at the same moment: one is saved, the other refused.

Each save runs in a thread of its own, with its own app context and session. The race is
made wide on purpose: the first saver is held between its overlap check and its write
until the second saver has checked too (or, when the second cannot check because it waits
for the first, for a moment), which is the window in which both checks used to pass.
"""

import threading
from datetime import UTC, datetime

import pytest
import responses

from app.api.bearer_tokens import create_token
from app.bookings import service
from app.bookings.service import save_booking
from app.bookings.validation import OVERLAP, FieldError
from app.extensions import db
from app.models import BookableObject, Booking, SyncLogEntry
from app.sync import engine
from app.sync.decision import CREATE, REFUSE
from app.sync.engine import sync_link
from tests.sync_helpers import GRAPH, delta_url, event, graph_client, make_room_link, page

ROOM = "room-a@contoso.example"
DELTA = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-1"
# How long the first saver waits for the second's check before it writes anyway.
HOLD_SECONDS = 1.5
GIVE_UP_SECONDS = 60


def december_1st(hour, minute=0):
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC)


# Both periods in UTC; Room A's organisation shows them an hour later (Amsterdam, winter time).
NINE_TO_TEN = (december_1st(9), december_1st(10))
HALF_PAST_NINE_TO_HALF_PAST_TEN = (december_1st(9, 30), december_1st(10, 30))


class Race:
    """Runs two saves at the same moment, the first held between its overlap check and its write."""

    def __init__(self):
        self.start = threading.Barrier(2, timeout=GIVE_UP_SECONDS)
        self.first_checked = threading.Event()
        self.second_checked = threading.Event()

    def checked(self):
        """Called right after a saver's overlap check."""
        role = threading.current_thread().name
        if role == "first":
            self.first_checked.set()
            self.second_checked.wait(HOLD_SECONDS)
        elif role == "second":
            self.second_checked.set()

    def run(self, first, second):
        """Run `first` and `second` in threads of their own; return what each returned."""
        results, failures = {}, []

        def saver(role, save):
            try:
                self.start.wait()
                if role == "second":
                    self.first_checked.wait(GIVE_UP_SECONDS)
                results[role] = save()
            except BaseException as failure:  # reported by the test thread below
                failures.append(failure)

        threads = [
            threading.Thread(target=saver, name=role, args=(role, save))
            for role, save in (("first", first), ("second", second))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(GIVE_UP_SECONDS)
        assert not failures, failures
        assert not any(thread.is_alive() for thread in threads)
        return results["first"], results["second"]


@pytest.fixture
def race(monkeypatch):
    """A Race whose savers pause after the check of save_booking and of the sync's decisions."""
    race = Race()
    check_booking = service.validate_booking

    def validate_then_pause(booking):
        errors = check_booking(booking)
        race.checked()
        return errors

    decide = engine.decide

    def decide_then_pause(*args, **kwargs):
        decision = decide(*args, **kwargs)
        if decision.action in (CREATE, REFUSE):
            race.checked()
        return decision

    monkeypatch.setattr(service, "validate_booking", validate_then_pause)
    monkeypatch.setattr(engine, "decide", decide_then_pause)
    return race


def portal_saves(app, world, period, *, booking_id=None):
    """A save through save_booking, as the portal's booking form does; returns (booking id, FieldErrors)."""

    def save():
        with app.app_context():
            if booking_id is None:
                booking = Booking(organisation_id=world.a.org, customer_id=world.a.customer, remark="Portal")
            else:
                booking = db.session.get(Booking, booking_id)
            booking.object_id = world.a.object
            booking.status_id = world.a.statuses["Confirmed"]
            booking.start_at, booking.end_at = period
            errors = save_booking(booking)
            return (None if errors else booking.id), errors

    return save


def api_saves(app, world, period):
    """A POST to the booking API; returns (status code, JSON body)."""
    with app.app_context():
        _, secret = create_token(world.a.org, "Race")
        db.session.commit()
    body = {
        "object_id": world.a.object,
        "status_id": world.a.statuses["Confirmed"],
        "start": period[0].isoformat(),
        "end": period[1].isoformat(),
    }

    def save():
        response = app.test_client().post("/api/v1/bookings", json=body, headers={"Authorization": f"Bearer {secret}"})
        return response.status_code, response.get_json()

    return save


def sync_saves(app, link_id):
    """An inbound sync of Room A whose one page brings appointment ev-race; returns the summary."""

    def save():
        with app.app_context():
            return sync_link(link_id, client=graph_client(max_attempts=1))

    return save


@pytest.fixture
def delta_page(clock):
    """Graph answers the sync's delta request with one page: ev-race from 09:00 to 10:00 UTC."""
    with responses.RequestsMock() as mock:
        mock.get(delta_url(ROOM), json=page([event("ev-race", *NINE_TO_TEN, subject="Race")], delta_link=DELTA))
        yield


def saved_bookings(app):
    with app.app_context():
        rows = db.session.scalars(db.select(Booking).order_by(Booking.id))
        return [(booking.id, booking.object_id, booking.start_at, booking.end_at) for booking in rows]


def overlap_refusal(booking_id, status, local_times):
    return FieldError("start_at", f"Overlaps booking {booking_id} ({status}) on Room A from {local_times}.", OVERLAP)


def sync_refusals(app):
    with app.app_context():
        query = db.select(SyncLogEntry.reason).where(SyncLogEntry.action == REFUSE)
        return db.session.scalars(query).all()


def test_two_portal_saves_at_once_keep_one_booking(app, world, race):
    (first_id, first_errors), (second_id, second_errors) = race.run(
        portal_saves(app, world, NINE_TO_TEN), portal_saves(app, world, HALF_PAST_NINE_TO_HALF_PAST_TEN)
    )
    assert saved_bookings(app) == [(first_id, world.a.object, *NINE_TO_TEN)]
    assert first_errors == []
    assert (second_id, second_errors) == (None, [overlap_refusal(first_id, "Confirmed", "2026-12-01 10:00 to 11:00")])


def test_a_booking_moved_onto_an_object_at_the_moment_another_is_booked_there_keeps_one(app, world, race):
    with app.app_context():
        other = BookableObject(organisation_id=world.a.org, name="Room A2")
        db.session.add(other)
        db.session.flush()
        moving = Booking(
            organisation_id=world.a.org,
            object_id=other.id,
            status_id=world.a.statuses["Confirmed"],
            start_at=december_1st(14),
            end_at=december_1st(15),
        )
        db.session.add(moving)
        db.session.commit()
        moving_id = moving.id
    (moved_id, move_errors), (new_id, new_errors) = race.run(
        portal_saves(app, world, HALF_PAST_NINE_TO_HALF_PAST_TEN, booking_id=moving_id),
        portal_saves(app, world, NINE_TO_TEN),
    )
    assert saved_bookings(app) == [(moving_id, world.a.object, *HALF_PAST_NINE_TO_HALF_PAST_TEN)]
    assert (moved_id, move_errors) == (moving_id, [])
    assert (new_id, new_errors) == (None, [overlap_refusal(moving_id, "Confirmed", "2026-12-01 10:30 to 11:30")])


def test_the_portal_saving_while_the_api_saves_is_refused(app, world, race):
    (status, body), (portal_id, portal_errors) = race.run(
        api_saves(app, world, NINE_TO_TEN), portal_saves(app, world, HALF_PAST_NINE_TO_HALF_PAST_TEN)
    )
    assert status == 201
    assert saved_bookings(app) == [(body["id"], world.a.object, *NINE_TO_TEN)]
    assert (portal_id, portal_errors) == (
        None,
        [overlap_refusal(body["id"], "Confirmed", "2026-12-01 10:00 to 11:00")],
    )


def test_the_api_saving_while_the_portal_saves_is_refused_with_409(app, world, race):
    (portal_id, portal_errors), (status, body) = race.run(
        portal_saves(app, world, HALF_PAST_NINE_TO_HALF_PAST_TEN), api_saves(app, world, NINE_TO_TEN)
    )
    assert portal_errors == []
    assert saved_bookings(app) == [(portal_id, world.a.object, *HALF_PAST_NINE_TO_HALF_PAST_TEN)]
    assert status == 409
    assert body == {
        "error": "The booking overlaps another booking of the same object.",
        "fields": {"start": f"Overlaps booking {portal_id} (Confirmed) on Room A from 2026-12-01 10:30 to 11:30."},
    }


def test_the_portal_saving_while_the_sync_books_is_refused(app, world, race, delta_page):
    with app.app_context():
        link_id = make_room_link(world).id
    summary, (portal_id, portal_errors) = race.run(
        sync_saves(app, link_id), portal_saves(app, world, HALF_PAST_NINE_TO_HALF_PAST_TEN)
    )
    bookings = saved_bookings(app)
    assert [booking[1:] for booking in bookings] == [(world.a.object, *NINE_TO_TEN)]
    assert (summary.created, summary.refused) == (1, 0)
    synced_id = bookings[0][0]
    assert (portal_id, portal_errors) == (None, [overlap_refusal(synced_id, "Option", "2026-12-01 10:00 to 11:00")])


def test_the_sync_booking_while_the_portal_saves_is_refused_and_logged(app, world, race, delta_page):
    with app.app_context():
        link_id = make_room_link(world).id
    (portal_id, portal_errors), summary = race.run(
        portal_saves(app, world, HALF_PAST_NINE_TO_HALF_PAST_TEN), sync_saves(app, link_id)
    )
    assert portal_errors == []
    assert saved_bookings(app) == [(portal_id, world.a.object, *HALF_PAST_NINE_TO_HALF_PAST_TEN)]
    assert (summary.created, summary.refused) == (0, 1)
    assert sync_refusals(app) == [
        "Not booked: the appointment “Race” on 2026-12-01 10:00–11:00, "
        "organiser Organiser <organiser@contoso.example>. "
        f"Overlaps booking {portal_id} (Confirmed) on Room A from 2026-12-01 10:30 to 11:30."
    ]
