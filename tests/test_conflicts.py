"""Outlook appointments refused for an overlap: kept as one conflict each, closed when they stop clashing,
listed on the status page with *Try again*, and counted on support's overview."""

import html
import re
from datetime import timedelta

import pytest
import responses

from app.extensions import db
from app.models import Booking, CalendarLink, Job, SyncConflict, SyncLogEntry
from app.sync.calendar_reset import forget_sync_state
from app.sync.engine import sync_link, sync_one_event
from tests.admin_helpers import TENANT, add_rooms_integration, audit_entries, run_queued_jobs
from tests.sync_helpers import GRAPH, at, delta_url, event, graph_client, page, removed

ROOM = "room-a@alpha.example"
DELTA1 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-1"
DELTA2 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-2"
EVENT_URL = f"{GRAPH}/users/{ROOM}/events/ev-clash"
APP_TOKEN_URL = f"https://login.test/{TENANT}/oauth2/v2.0/token"
APP_TOKEN = {"token_type": "Bearer", "expires_in": 3599, "access_token": "app-only-access-token-CONFLICTS"}


def clashing(**extra):
    """An appointment 09:00-10:00 UTC on 1 December (10:00-11:00 in Amsterdam) by Ann."""
    values = dict(
        subject="Board meeting",
        organizer={"emailAddress": {"name": "Ann Organiser", "address": "ann@alpha.example"}},
    )
    values.update(extra)
    return event("ev-clash", at(1, 9), at(1, 10), **values)


@pytest.fixture
def rooms(app, world, clock):
    """A room of organisation A, already booked in i-Reserve from 09:30 to 11:00 UTC on 1 December."""
    with app.app_context():
        integration = add_rooms_integration(
            world.a,
            [ROOM],
            new_booking_status_id=world.a.statuses["Option"],
            cancel_status_id=world.a.statuses["Cancelled"],
        )
        booking = Booking(
            organisation_id=world.a.org,
            object_id=world.a.object,
            status_id=world.a.statuses["Confirmed"],
            start_at=at(1, 9, 30),
            end_at=at(1, 11),
            remark="Quarterly review",
        )
        db.session.add(booking)
        db.session.commit()
        integration.link = integration.links[ROOM]
        integration.booking = booking.id
        return integration


def sync(app, link_id):
    with app.app_context():
        return sync_link(link_id, client=graph_client(max_attempts=1))


def first_sync(app, rooms, *items):
    with responses.RequestsMock() as mock:
        mock.get(delta_url(ROOM), json=page(list(items), delta_link=DELTA1))
        return sync(app, rooms.link)


def next_sync(app, rooms, *items, delta=DELTA1, then=DELTA2, also=()):
    with responses.RequestsMock() as mock:
        mock.get(delta, json=page(list(items), delta_link=then))
        for url, body, status in also:
            mock.get(url, json=body, status=status)
        return sync(app, rooms.link)


def conflicts(app):
    with app.app_context():
        return [
            (c.event_id, c.subject, c.start_at, c.end_at, c.organiser_name, c.organiser_email, c.booking_id)
            for c in db.session.scalars(db.select(SyncConflict).order_by(SyncConflict.id))
        ]


def refusal_lines(app):
    with app.app_context():
        query = db.select(SyncLogEntry.reason).where(SyncLogEntry.action == "refuse").order_by(SyncLogEntry.id)
        return db.session.scalars(query).all()


def booked_from_outlook(app):
    with app.app_context():
        bookings = db.session.scalars(db.select(Booking).where(Booking.channel == "external/outlook")).all()
        return [(b.start_at, b.end_at, (b.extra or {}).get("outlook_event_id")) for b in bookings]


def cancel_booking(app, booking_id, world):
    with app.app_context():
        db.session.get(Booking, booking_id).status_id = world.a.statuses["Cancelled"]
        db.session.commit()


def test_an_overlapping_appointment_is_one_conflict_however_often_it_is_refused(app, rooms, clock):
    summary = first_sync(app, rooms, clashing(), clashing())  # Graph may repeat an event within a round
    assert summary.refused == 2 and booked_from_outlook(app) == []
    expected = ("ev-clash", "Board meeting", at(1, 9), at(1, 10), "Ann Organiser", "ann@alpha.example", rooms.booking)
    assert conflicts(app) == [expected]

    clock.advance(timedelta(hours=1))
    next_sync(app, rooms, clashing())
    assert conflicts(app) == [expected]
    with app.app_context():
        conflict = db.session.scalar(db.select(SyncConflict))
        assert conflict.first_seen_at == clock.now - timedelta(hours=1)
        assert conflict.last_seen_at == clock.now


def test_the_refusal_line_names_the_appointment_and_the_booking(app, rooms):
    first_sync(app, rooms, clashing())
    [line] = set(refusal_lines(app))
    # The appointment: subject, time in the organisation's zone (Amsterdam), organiser.
    assert "“Board meeting” on 2026-12-01 10:00–11:00" in line
    assert "Ann Organiser <ann@alpha.example>" in line
    # The booking it clashes with.
    assert f"Overlaps booking {rooms.booking} (Confirmed)" in line


def test_a_private_appointment_s_subject_is_kept_nowhere(app, rooms):
    first_sync(app, rooms, clashing(subject="Doctor appointment", sensitivity="private"))
    [(_, subject, *_)] = conflicts(app)
    assert subject == "Private appointment"
    assert not any("Doctor" in line for line in refusal_lines(app))


def test_trying_again_after_the_booking_is_cancelled_books_the_appointment(app, rooms, world):
    first_sync(app, rooms, clashing())
    cancel_booking(app, rooms.booking, world)
    with responses.RequestsMock() as mock:
        mock.get(EVENT_URL, json=clashing())
        with app.app_context():
            sync_one_event(rooms.link, "ev-clash", client=graph_client(max_attempts=1))
    assert booked_from_outlook(app) == [(at(1, 9), at(1, 10), "ev-clash")]
    assert conflicts(app) == []


def test_trying_again_while_the_clash_remains_keeps_the_conflict(app, rooms):
    first_sync(app, rooms, clashing())
    with responses.RequestsMock() as mock:
        mock.get(EVENT_URL, json=clashing())
        with app.app_context():
            sync_one_event(rooms.link, "ev-clash", client=graph_client(max_attempts=1))
    assert booked_from_outlook(app) == []
    assert len(conflicts(app)) == 1


def test_trying_again_on_an_appointment_deleted_meanwhile_closes_the_conflict(app, rooms):
    first_sync(app, rooms, clashing())
    with responses.RequestsMock() as mock:
        mock.get(EVENT_URL, status=404, json={"error": {"code": "ErrorItemNotFound"}})
        with app.app_context():
            sync_one_event(rooms.link, "ev-clash", client=graph_client(max_attempts=1))
    assert conflicts(app) == [] and booked_from_outlook(app) == []


def test_an_appointment_deleted_in_outlook_closes_its_conflict(app, rooms):
    first_sync(app, rooms, clashing())
    next_sync(app, rooms, removed("ev-clash"))
    assert conflicts(app) == []


def test_an_appointment_cancelled_in_outlook_closes_its_conflict(app, rooms):
    first_sync(app, rooms, clashing())
    next_sync(app, rooms, clashing(isCancelled=True))
    assert conflicts(app) == [] and booked_from_outlook(app) == []


def test_an_appointment_moved_off_the_clash_is_booked_and_its_conflict_closed(app, rooms):
    first_sync(app, rooms, clashing())
    next_sync(app, rooms, event("ev-clash", at(1, 13), at(1, 14), subject="Board meeting"))
    assert booked_from_outlook(app) == [(at(1, 13), at(1, 14), "ev-clash")]
    assert conflicts(app) == []


def test_an_appointment_moved_onto_another_clash_keeps_one_conflict_with_its_new_time(app, rooms):
    first_sync(app, rooms, clashing())
    next_sync(app, rooms, event("ev-clash", at(1, 10), at(1, 12), subject="Board meeting"))
    [(_, _, start, end, *_)] = conflicts(app)
    assert (start, end) == (at(1, 10), at(1, 12))


def test_a_full_round_that_no_longer_returns_the_appointment_closes_its_conflict(app, rooms, clock):
    first_sync(app, rooms, clashing())
    clock.advance(timedelta(days=1))
    with responses.RequestsMock() as mock:
        mock.get(delta_url(ROOM), json=page([], delta_link=DELTA2))
        with app.app_context():
            sync_link(rooms.link, full=True, client=graph_client(max_attempts=1))
    assert conflicts(app) == []


def test_conflicts_of_one_room_do_not_close_another_room_s(app, world, rooms):
    with app.app_context():
        other = add_rooms_integration(world.a, ["room-b@alpha.example"])
        db.session.add(
            SyncConflict(
                organisation_id=world.a.org,
                integration_id=other.id,
                link_id=other.links["room-b@alpha.example"],
                event_id="ev-clash",
                subject="Elsewhere",
                start_at=at(1, 9),
                end_at=at(1, 10),
            )
        )
        db.session.commit()
    first_sync(app, rooms, clashing())
    next_sync(app, rooms, removed("ev-clash"))
    assert [c[1] for c in conflicts(app)] == ["Elsewhere"]


# --- The status page, Try again and support's overview ------------------------------------------


def text_of(response):
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


def retry_url(rooms, app):
    with app.app_context():
        conflict_id = db.session.scalar(db.select(SyncConflict.id))
    return f"{rooms.base}/conflicts/{conflict_id}/retry"


def test_the_status_page_lists_the_appointment_and_the_booking_it_clashes_with(app, rooms, client, login, world):
    first_sync(app, rooms, clashing())
    login(world.a.admin)
    response = client.get(rooms.base)
    text = text_of(response)
    assert "Not booked from Outlook" in text
    assert re.search(r'id="conflict-count".*?<strong>1</strong>', response.get_data(as_text=True), re.S)
    assert "Board meeting" in text and "2026-12-01 10:00–11:00" in text and "Europe/Amsterdam" in text
    assert "Ann Organiser <ann@alpha.example>" in text and ROOM in text
    assert f'href="/orgs/{world.a.org}/bookings/{rooms.booking}/edit"' in response.get_data(as_text=True)
    assert retry_url(rooms, app) in response.get_data(as_text=True)


def test_the_status_page_hides_a_private_appointment_s_subject(app, rooms, client, login, world):
    first_sync(app, rooms, clashing(subject="Doctor appointment", sensitivity="private"))
    login(world.a.admin)
    text = text_of(client.get(rooms.base))
    assert "Private appointment" in text and "Doctor" not in text


def test_try_again_queues_a_job_that_books_the_appointment_once_the_room_is_free(app, rooms, client, login, world):
    first_sync(app, rooms, clashing())
    cancel_booking(app, rooms.booking, world)
    login(world.a.admin)
    response = client.post(retry_url(rooms, app), follow_redirects=True)
    assert "Trying again" in text_of(response) and "Try again is queued" in text_of(response)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 1
        assert audit_entries(rooms.id)[-1][:2] == ("conflict_retried", f"“Board meeting” on {ROOM}.")
    with responses.RequestsMock() as mock:
        mock.post(APP_TOKEN_URL, json=APP_TOKEN)
        mock.get(EVENT_URL, json=clashing())
        with app.app_context():
            assert set(run_queued_jobs("retry_conflict").values()) == {"done"}
    assert booked_from_outlook(app) == [(at(1, 9), at(1, 10), "ev-clash")]
    text = text_of(client.get(rooms.base))
    assert "Board meeting" not in text and "Every appointment read from Outlook has its booking" in text


def test_try_again_while_the_booking_still_clashes_leaves_the_row_with_a_note(app, rooms, client, login, world):
    first_sync(app, rooms, clashing())
    login(world.a.admin)
    client.post(retry_url(rooms, app))
    with responses.RequestsMock() as mock:
        mock.post(APP_TOKEN_URL, json=APP_TOKEN)
        mock.get(EVENT_URL, json=clashing())
        with app.app_context():
            run_queued_jobs("retry_conflict")
    text = text_of(client.get(rooms.base))
    assert "Board meeting" in text
    assert f"Tried again at 2026-11-25 13:00: the appointment still overlaps booking {rooms.booking}." in text


def test_try_again_when_outlook_cannot_be_read_says_so_on_the_row(app, rooms, client, login, world):
    first_sync(app, rooms, clashing())
    login(world.a.admin)
    client.post(retry_url(rooms, app))
    with responses.RequestsMock() as mock:
        mock.post(APP_TOKEN_URL, json=APP_TOKEN)
        denied = {"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}}
        mock.get(EVENT_URL, status=403, json=denied)
        with app.app_context():
            assert set(run_queued_jobs("retry_conflict").values()) == {"done"}
    text = text_of(client.get(rooms.base))
    assert "Tried again at 2026-11-25 13:00: Outlook could not be read (" in text
    assert "try again later." in text and "Try again is queued" not in text


def test_a_calendar_started_over_forgets_its_conflicts(app, rooms):
    first_sync(app, rooms, clashing())
    with app.app_context():
        forget_sync_state(db.session.get(CalendarLink, rooms.link))
        db.session.commit()
    assert conflicts(app) == []


def test_another_organisation_s_admin_can_neither_see_nor_retry_a_conflict(app, rooms, client, login, world):
    first_sync(app, rooms, clashing())
    login(world.b.admin)
    assert client.get(rooms.base).status_code == 404
    assert client.post(retry_url(rooms, app)).status_code == 404
    # Nor through their own organisation's address.
    with app.app_context():
        own = add_rooms_integration(world.b, ["room-b@beta.example"])
    conflict_id = retry_url(rooms, app).rsplit("/", 2)[-2]
    assert client.post(f"{own.base}/conflicts/{conflict_id}/retry").status_code == 404
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0


def test_support_s_overview_counts_open_conflicts_per_integration(app, rooms, client, login, world):
    first_sync(app, rooms, clashing())
    with app.app_context():
        quiet = add_rooms_integration(world.b, ["room-b@beta.example"], name="Quiet rooms")
    login(world.support)
    response = client.get("/support/integrations")
    page_html = response.get_data(as_text=True)
    row = page_html[page_html.index(f'id="integration-{rooms.id}"') :]
    row = row[: row.index("</tr>")]
    assert f'href="{rooms.base}#conflicts-heading">1</a>' in row
    quiet_row = page_html[page_html.index(f'id="integration-{quiet.id}"') :]
    quiet_cells = re.findall(r"<td[^>]*>(.*?)</td>", quiet_row[: quiet_row.index("</tr>")], flags=re.S)
    headers = re.findall(r'<th scope="col">(.*?)</th>', page_html)
    assert quiet_cells[headers.index("Not booked")] == "0"
