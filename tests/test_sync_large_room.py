"""A room with a few thousand appointments ends up as exactly the right bookings,
whether its syncs are interrupted or not."""

import random
from datetime import timedelta

import pytest
import responses

from app.extensions import db
from app.graph.errors import GraphThrottled
from app.models import Booking, SyncLogEntry
from app.sync.engine import sync_link
from tests.sync_helpers import GRAPH, at, bookings_state, event, graph_client, make_room_link, page, removed

ROOM = "big-room@contoso.example"
PAGE_SIZE = 100


def calendar(seed, count=2000):
    """Singles, weekly series (occurrences and exceptions), cancellations and private events."""
    chooser = random.Random(seed)
    items = []
    for n in range(count):
        # Every three hours from the first of December: about 250 days, inside the window.
        start = at(1, 0) + timedelta(hours=3 * n)
        end = start + timedelta(minutes=45)
        kind = chooser.choice(["single", "single", "occurrence", "exception", "private", "cancelled"])
        extra = {}
        if kind in ("occurrence", "exception"):
            extra = {"type": kind, "seriesMasterId": f"series-{n % 7}"}
        elif kind == "private":
            extra = {"sensitivity": "private"}
        elif kind == "cancelled":
            extra = {"isCancelled": True}
        items.append(event(f"ev-{n:05d}", start, end, subject=f"Appointment {n}", **extra))
    items.append(event("series-0", at(1, 7), at(1, 8), type="seriesMaster"))
    return items


def serve(mock, items, first_url, final_delta, fail_at_page=None, params=None):
    """Register the items as pages; optionally page `fail_at_page` answers 503 for good."""
    pages = [items[i : i + PAGE_SIZE] for i in range(0, len(items), PAGE_SIZE)] or [[]]
    urls = [first_url] + [f"{first_url.split('?')[0]}?$skiptoken=p{i}-{final_delta}" for i in range(1, len(pages))]
    for number, (url, chunk) in enumerate(zip(urls, pages, strict=True)):
        is_last = number == len(pages) - 1
        body = page(chunk, next_link=None if is_last else urls[number + 1], delta_link=final_delta if is_last else None)
        if number == fail_at_page:
            mock.get(url, status=503, json={"error": {"code": "ServiceUnavailable"}})
        else:
            mock.get(url, json=body)


def sync(app, link_id):
    with app.app_context():
        return sync_link(link_id, client=graph_client(max_attempts=1))


def expected_after(items):
    """What a user expects: one booking per non-cancelled, non-master event."""
    return sorted(
        e["id"] for e in items if not e.get("isCancelled") and e.get("type") != "seriesMaster" and "@removed" not in e
    )


def linked_ids(app):
    with app.app_context():
        rows = db.session.scalars(db.select(Booking).where(Booking.status.has(name="Option"))).all()
        return sorted(b.extra["outlook_event_id"] for b in rows)


@pytest.mark.parametrize("interrupt_at", [None, 7])
def test_first_sync_and_incremental_rounds_of_a_busy_room(app, world, clock, interrupt_at):
    with app.app_context():
        link_id = make_room_link(world, upn=ROOM, ignore_validation_errors=True).id
    items = calendar(seed=4)
    first = f"{GRAPH}/users/{ROOM}/calendarView/delta"
    if interrupt_at is not None:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            serve(mock, items, first, "d1", fail_at_page=interrupt_at)
            with pytest.raises(GraphThrottled):
                sync(app, link_id)
    with responses.RequestsMock() as mock:
        serve(mock, items, first, f"{first}?$deltatoken=d1")
        sync(app, link_id)
    assert linked_ids(app) == expected_after(items)

    # An incremental round: some moved, some deleted (confirmed gone), some new.
    expected_ids = set(expected_after(items))
    booked = [e for e in items if e["id"] in expected_ids]
    changes = [event(e["id"], at(28, 20), at(28, 21), subject=e["subject"]) for e in booked[10:30]]
    gone = [e["id"] for e in booked[100:140]]
    new = [event(f"new-{n}", at(27, 6), at(27, 7)) for n in range(5)]
    with responses.RequestsMock() as mock:
        serve(mock, changes + [removed(i) for i in gone] + new, f"{first}?$deltatoken=d1", f"{first}?$deltatoken=d2")
        for event_id in gone:
            mock.get(
                f"{GRAPH}/users/{ROOM}/events/{event_id}", status=404, json={"error": {"code": "ErrorItemNotFound"}}
            )
        sync(app, link_id)
    expected = sorted(set(expected_after(items)) - set(gone) | {e["id"] for e in new})
    assert linked_ids(app) == expected
    with app.app_context():
        moved = db.session.scalars(db.select(Booking).where(Booking.start_at == at(28, 20))).all()
        assert len(moved) == len(changes)
        assert db.session.scalar(db.select(db.func.count()).select_from(SyncLogEntry).where(SyncLogEntry.is_error)) == (
            1 if interrupt_at is not None else 0
        )
        final_state = bookings_state()

    # Replaying the incremental round changes nothing.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        serve(mock, changes + [removed(i) for i in gone] + new, f"{first}?$deltatoken=d2", f"{first}?$deltatoken=d3")
        sync(app, link_id)
    with app.app_context():
        assert bookings_state() == final_state
