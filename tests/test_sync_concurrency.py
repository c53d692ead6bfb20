"""Two sync runs of one link at the same moment end as one run would: the database, not
the job queue's one-job-per-key rule, keeps an Outlook event to one booking."""

import threading

import pytest
import responses

from app.extensions import db
from app.models import Booking, SyncLogEntry
from app.sync import engine
from app.sync.engine import sync_link
from app.sync.writes import SyncWrites
from tests.sync_helpers import at, delta_url, event, graph_client, make_room_link, page

ROOM = "room-a@contoso.example"
DELTA = "https://graph.test/v1.0/users/room-a@contoso.example/calendarView/delta?$deltatoken=done"


@pytest.mark.parametrize("object_lock", ["held", "bypassed"])
def test_two_syncs_of_one_link_at_once_make_one_booking_per_event(app, world, clock, monkeypatch, object_lock):
    """Held, the object's booking lock serialises the pages; bypassed, the unique event id
    refuses the second run's inserts and that run decides its page again."""
    if object_lock == "bypassed":
        monkeypatch.setattr(engine, "lock_objects_for_booking", lambda session, *object_ids: None)
    with app.app_context():
        link_id = make_room_link(world).id
    items = [event(f"ev-{n}", at(10 + n, 9), at(10 + n, 10), subject=f"Meeting {n}") for n in range(3)]
    # Both runs decide the whole page before either writes it: without the database's
    # guarantee both would create every booking.
    # With the lock held the second run cannot decide until the first has written: the
    # first stops waiting after a moment.
    both_decided = threading.Barrier(2, timeout=2)
    write = SyncWrites.write

    def write_when_both_decided(self):
        if self._bookings:
            try:
                both_decided.wait()
            except threading.BrokenBarrierError:
                pass  # the other run is already past its write: nothing left to race
        return write(self)

    monkeypatch.setattr(SyncWrites, "write", write_when_both_decided)
    outcomes = []

    def run():
        with app.app_context():
            try:
                outcomes.append(sync_link(link_id, client=graph_client(max_attempts=1)))
            except Exception as error:  # the assertion below names it
                outcomes.append(error)
            finally:
                db.session.remove()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(delta_url(ROOM), json=page(items, delta_link=DELTA))
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert len(outcomes) == 2 and not [o for o in outcomes if isinstance(o, Exception)], outcomes
    with app.app_context():
        linked = [b.extra.get("outlook_event_id") for b in db.session.scalars(db.select(Booking))]
        assert sorted(linked) == ["ev-0", "ev-1", "ev-2"]
        errors = db.session.scalars(db.select(SyncLogEntry).where(SyncLogEntry.is_error.is_(True))).all()
        assert [(e.action, e.reason) for e in errors] == []
    assert sorted(o.created for o in outcomes) == [0, 3]
