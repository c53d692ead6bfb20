"""Full sync from the portal: confirmed, queued as one job per calendar, its progress shown while it runs."""

import re
from datetime import timedelta

import pytest
import responses

from app.extensions import db
from app.formatting import localtime
from app.graph.errors import GraphError
from app.jobs.handlers import SYNC_LINK
from app.models import CalendarLink, Job, Organisation
from app.sync.engine import sync_link
from tests.admin_helpers import add_rooms_integration, audit_entries
from tests.sync_helpers import GRAPH, at, event, graph_client, make_room_link, page, removed

ROOM_A, ROOM_B, ROOM_OFF = "room-a@contoso.example", "room-b@contoso.example", "room-off@contoso.example"


def text_of(response):
    spaced = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))
    return re.sub(r" ([.,)])", r"\1", spaced).replace("( ", "(")


def sync_jobs():
    """(link id, full?) of every queued sync job, in order."""
    jobs = db.session.scalars(db.select(Job).where(Job.kind == SYNC_LINK).order_by(Job.key)).all()
    return [(int(job.key), bool(job.payload.get("full"))) for job in jobs]


@pytest.fixture
def rooms(app, world):
    with app.app_context():
        return add_rooms_integration(world.a, [ROOM_A, ROOM_B, {"mailbox": ROOM_OFF, "enabled": False}])


def test_the_confirmation_says_what_a_full_sync_does_and_that_nothing_is_lost(app, world, login, rooms):
    client = login(world.a.admin)
    response = client.get(f"{rooms.base}/rooms/{rooms.links[ROOM_A]}/full-sync")
    assert response.status_code == 200
    text = text_of(response)
    assert f"Full sync of {ROOM_A}?" in text
    assert "reads the whole calendar again from Outlook, within the sync window" in text
    assert "from 90 days ago to 365 days ahead" in text
    assert "Nothing is lost" in text
    assert "No booking is cancelled because of the full sync" in text
    assert "only when Outlook confirms the appointment was deleted" in text
    with app.app_context():
        assert sync_jobs() == []


def test_confirming_queues_one_full_sync_and_a_double_click_queues_no_second(app, world, login, rooms):
    client = login(world.a.admin)
    url = f"{rooms.base}/rooms/{rooms.links[ROOM_A]}/full-sync"
    first = client.post(url)
    second = client.post(url, follow_redirects=True)
    assert first.status_code == 302 and first.headers["Location"].endswith(rooms.base)
    assert f"Full sync of {ROOM_A} queued" in text_of(second)
    with app.app_context():
        assert sync_jobs() == [(rooms.links[ROOM_A], True)]
        assert audit_entries(rooms.id)[-1] == ("full_sync_started", f"{ROOM_A}.", world.a.admin)


def test_a_full_sync_asked_for_after_sync_now_turns_the_pending_sync_into_a_full_one(app, world, login, rooms):
    client = login(world.a.admin)
    link_id = rooms.links[ROOM_A]
    client.post(f"{rooms.base}/rooms/{link_id}/sync")
    with app.app_context():
        assert sync_jobs() == [(link_id, False)]
    client.post(f"{rooms.base}/rooms/{link_id}/full-sync")
    client.post(f"{rooms.base}/rooms/{link_id}/sync")
    with app.app_context():
        assert sync_jobs() == [(link_id, True)]


def test_sync_now_stays_incremental(app, world, login, rooms):
    client = login(world.a.admin)
    client.post(f"{rooms.base}/rooms/{rooms.links[ROOM_B]}/sync")
    with app.app_context():
        assert sync_jobs() == [(rooms.links[ROOM_B], False)]


def test_the_integrations_full_sync_queues_one_job_per_enabled_room(app, world, login, rooms):
    client = login(world.a.admin)
    confirmation = text_of(client.get(f"{rooms.base}/full-sync"))
    assert f"It runs for 2 enabled calendar(s): {ROOM_A}, {ROOM_B}." in confirmation
    client.post(f"{rooms.base}/full-sync")
    client.post(f"{rooms.base}/full-sync")
    with app.app_context():
        assert sync_jobs() == sorted([(rooms.links[ROOM_A], True), (rooms.links[ROOM_B], True)])
        started = [entry for entry in audit_entries(rooms.id) if entry[0] == "full_sync_started"]
        assert [detail for _, detail, _ in started] == [f"2 calendar(s): {ROOM_A}, {ROOM_B}."] * 2


def test_a_disabled_room_is_not_full_synced(app, world, login, rooms):
    client = login(world.a.admin)
    response = client.post(f"{rooms.base}/rooms/{rooms.links[ROOM_OFF]}/full-sync", follow_redirects=True)
    assert f"{ROOM_OFF} is disabled" in text_of(response)
    with app.app_context():
        assert sync_jobs() == []


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_organisations_admin_gets_404(app, world, login, rooms, method):
    client = login(world.b.admin)
    for url in (f"{rooms.base}/rooms/{rooms.links[ROOM_A]}/full-sync", f"{rooms.base}/full-sync"):
        assert getattr(client, method)(url).status_code == 404
    with app.app_context():
        assert sync_jobs() == []


def test_support_may_start_a_full_sync_of_any_organisation(app, world, login, rooms):
    client = login(world.support)
    assert client.post(f"{rooms.base}/full-sync").status_code == 302
    with app.app_context():
        assert len(sync_jobs()) == 2


def test_a_link_of_another_integration_is_404(app, world, login, rooms):
    with app.app_context():
        other = add_rooms_integration(world.a, ["room-z@contoso.example"], name="Other rooms")
    client = login(world.a.admin)
    assert client.get(f"{rooms.base}/rooms/{other.links['room-z@contoso.example']}/full-sync").status_code == 404


# --- Progress, recorded by the engine ------------------------------------------------------


ROOM = "room-a@contoso.example"
VIEW = f"{GRAPH}/users/{ROOM}/calendarView/delta"
PAGE_2 = f"{VIEW}?$skiptoken=page-2"
DELTA = f"{VIEW}?$deltatoken=round-1"


def progress_columns(link_id):
    return db.session.execute(
        db.select(
            CalendarLink.full_sync_started_at.is_not(None),
            CalendarLink.full_sync_pages,
            CalendarLink.full_sync_appointments,
            CalendarLink.full_sync_last_page_at.is_not(None),
            CalendarLink.full_sync_finished_at,
        ).where(CalendarLink.id == link_id)
    ).one()


def test_a_full_sync_records_its_progress_with_each_page_and_marks_the_end(app, world, clock):
    with app.app_context():
        link_id = make_room_link(world).id
    seen_after_each_page = []

    def look(link, number, summary):
        seen_after_each_page.append(tuple(progress_columns(link_id)))

    with responses.RequestsMock() as mock:
        first = [event("e1", at(10, 9), at(10, 10)), event("e2", at(10, 11), at(10, 12))]
        mock.get(VIEW, json=page(first, next_link=PAGE_2))
        mock.get(PAGE_2, json=page([event("e3", at(11, 9), at(11, 10)), removed("e9")], delta_link=DELTA))
        with app.app_context():
            sync_link(link_id, full=True, client=graph_client(max_attempts=1), progress=look)
            after = progress_columns(link_id)

    assert seen_after_each_page == [(True, 1, 2, True, None), (True, 2, 3, True, None)]
    running, pages, appointments, _, finished_at = after
    assert (running, pages, appointments) == (False, 2, 3)
    assert finished_at is not None


def test_a_failed_full_sync_is_no_longer_shown_running(app, world, clock):
    with app.app_context():
        link_id = make_room_link(world).id
    with responses.RequestsMock() as mock:
        mock.get(VIEW, json=page([event("e1", at(10, 9), at(10, 10))], next_link=PAGE_2))
        mock.get(PAGE_2, status=400, json={"error": {"code": "BadRequest", "message": "no"}})
        with app.app_context(), pytest.raises(GraphError):
            sync_link(link_id, full=True, client=graph_client(max_attempts=1))
    with app.app_context():
        running, pages, appointments, _, finished_at = progress_columns(link_id)
    assert (running, pages, appointments, finished_at) == (False, 1, 1, None)


# --- The status page ------------------------------------------------------------------------


def test_the_status_page_shows_the_progress_line_while_a_full_sync_runs(app, world, login, rooms, clock):
    last_page = clock.now - timedelta(seconds=20)
    with app.app_context():
        link = db.session.get(CalendarLink, rooms.links[ROOM_B])
        link.full_sync_started_at = clock.now - timedelta(minutes=2)
        link.full_sync_pages, link.full_sync_appointments, link.full_sync_last_page_at = 3, 412, last_page
        db.session.commit()
        timezone = db.session.get(Organisation, world.a.org).timezone
    text = text_of(login(world.a.admin).get(rooms.base))
    expected = localtime(last_page, timezone, "%H:%M:%S")
    assert f"Full sync running for {ROOM_B}: 3 pages read, 412 appointments seen, last page {expected}." in text


def test_the_status_page_says_when_the_last_full_sync_finished(app, world, login, rooms, clock):
    with app.app_context():
        link = db.session.get(CalendarLink, rooms.links[ROOM_A])
        link.full_sync_finished_at, link.full_sync_appointments = clock.now, 1234
        db.session.commit()
        timezone = db.session.get(Organisation, world.a.org).timezone
    text = text_of(login(world.a.admin).get(rooms.base))
    assert "Full sync running" not in text
    assert f"Last full sync ({ROOM_A}) finished at {localtime(clock.now, timezone)} (1,234 appointments)." in text


def test_the_room_table_links_each_enabled_room_to_its_full_sync(app, world, login, rooms):
    html = login(world.a.admin).get(f"{rooms.base}/rooms").get_data(as_text=True)
    assert f'href="{rooms.base}/rooms/{rooms.links[ROOM_A]}/full-sync"' in html
    assert f'href="{rooms.base}/rooms/{rooms.links[ROOM_OFF]}/full-sync"' not in html
