"""The bookings timeline and a room's timeline as pages: filters, date jumps, isolation, Outlook marks, the table."""

import html
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from app.extensions import db
from app.models import BookableObject, Booking, Job
from app.models.job import JOB_FAILED
from app.orgs import routes as org_routes
from app.outbound.trigger import OUTBOUND_BOOKING, outbound_key
from tests.admin_helpers import add_rooms_integration


@pytest.fixture
def today(clock):
    # 25 November 2026, 13:00 in Amsterdam (the organisations' zone).
    return clock.now


def add_booking(world, start, end, status="Confirmed", object_id=None, remark="", extra=None, key="a"):
    """A booking from UTC times; returns its id."""
    org = getattr(world, key)
    booking = Booking(
        organisation_id=org.org,
        object_id=object_id or org.object,
        status_id=org.statuses[status],
        start_at=start,
        end_at=end,
        remark=remark,
        extra=extra or {},
    )
    db.session.add(booking)
    db.session.commit()
    return booking.id


def blocks(page):
    """{booking id: classes} of the blocks on the timeline grid."""
    return {
        int(booking_id): classes.split()
        for classes, booking_id in re.findall(r'<li class="(tl-block[^"]*)" data-booking="(\d+)"', page)
    }


def test_the_bookings_page_opens_on_todays_timeline_in_the_organisations_zone(app, login, world, today):
    with app.app_context():
        morning = add_booking(world, datetime(2026, 11, 25, 8, 0, tzinfo=UTC), datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
        add_booking(world, datetime(2026, 11, 26, 8, 0, tzinfo=UTC), datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    response = login(world.a.admin).get(f"/orgs/{world.a.org}/bookings")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    # 08:00 UTC is 09:00 in Amsterdam: the 37th quarter hour of the day.
    assert list(blocks(page)) == [morning]
    assert {"tl-from-37", "tl-to-41"} <= set(blocks(page)[morning])
    assert "Wed 25 Nov 2026" in page and "times in Europe/Amsterdam" in page
    assert f'href="/orgs/{world.a.org}/bookings/{morning}/edit"' in page


def test_an_all_day_booking_reads_all_day_and_not_midnight_to_midnight(app, login, world, today):
    with app.app_context():
        add_booking(world, datetime(2026, 11, 24, 23, 0, tzinfo=UTC), datetime(2026, 11, 25, 23, 0, tzinfo=UTC))
    page = login(world.a.admin).get(f"/orgs/{world.a.org}/bookings").get_data(as_text=True)
    assert "All day, Wed 25 Nov" in page
    assert "00:00–00:00" not in page and "00:00 –" not in page


def test_previous_next_and_the_week_switch_move_the_window(app, login, world, today):
    with app.app_context():
        next_week = add_booking(world, datetime(2026, 12, 2, 8, 0, tzinfo=UTC), datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    client = login(world.a.admin)
    page = client.get(f"/orgs/{world.a.org}/bookings?span=week").get_data(as_text=True)
    assert "Mon 23 Nov – Sun 29 Nov 2026" in page and next_week not in blocks(page)
    following = re.search(r'href="([^"]+)" rel="next"', page).group(1).replace("&amp;", "&")
    page = client.get(following).get_data(as_text=True)
    assert "Mon 30 Nov – Sun 6 Dec 2026" in page
    # Wednesday 09:00 local is hour 57 of the week.
    assert {"tl-from-58", "tl-to-59"} <= set(blocks(page)[next_week])


def test_filters_by_object_and_by_status(app, login, world, today):
    with app.app_context():
        hall = BookableObject(organisation_id=world.a.org, name="Hall")
        db.session.add(hall)
        db.session.commit()
        hall_id = hall.id
        in_room = add_booking(world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC))
        cancelled = add_booking(
            world, datetime(2026, 11, 25, 9, tzinfo=UTC), datetime(2026, 11, 25, 10, tzinfo=UTC), status="Cancelled"
        )
        in_hall = add_booking(
            world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC), object_id=hall_id
        )
    client = login(world.a.admin)
    base = f"/orgs/{world.a.org}/bookings?date=2026-11-25"
    assert set(blocks(client.get(base).get_data(as_text=True))) == {in_room, cancelled, in_hall}
    assert set(blocks(client.get(f"{base}&object={hall_id}").get_data(as_text=True))) == {in_hall}
    confirmed_only = client.get(f"{base}&status={world.a.statuses['Confirmed']}").get_data(as_text=True)
    assert set(blocks(confirmed_only)) == {in_room, in_hall}
    both = client.get(f"{base}&status={world.a.statuses['Confirmed']}&status={world.a.statuses['Cancelled']}")
    assert set(blocks(both.get_data(as_text=True))) == {in_room, cancelled, in_hall}
    # A status that does not occupy its object looks different from one that does.
    assert "tl-free" in blocks(both.get_data(as_text=True))[cancelled]
    assert "tl-free" not in blocks(both.get_data(as_text=True))[in_room]


@pytest.mark.parametrize(
    "query, field, message",
    [
        ("date=tomorrow", "date", "Date: Enter the date as year-month-day, for example 2026-12-02."),
        ("date=0001-01-01", "date", "Date: Enter a date between 1900 and 2999."),
        ("object=999999", "object", "Object: Choose one of the listed objects."),
        ("span=month", "span", "Show: Choose Day or Week."),
    ],
)
def test_a_bad_jump_or_filter_is_a_clear_error_next_to_it_and_today_is_still_shown(
    app, login, world, today, query, field, message
):
    with app.app_context():
        morning = add_booking(world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC))
    response = login(world.a.admin).get(f"/orgs/{world.a.org}/bookings?{query}")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.findall(rf'<p class="error" id="{field}-error">([^<]+)</p>', page) == [message]
    assert list(blocks(page)) == [morning]
    if field == "date":
        assert f'value="{query.split("=")[1]}"' in page and 'aria-invalid="true"' in page


def test_outlook_links_and_failed_writes_are_marked_on_their_blocks(app, login, world, today):
    with app.app_context():
        integration = add_rooms_integration(world.a, ["room@contoso.example"])
        linked = add_booking(
            world,
            datetime(2026, 11, 25, 8, tzinfo=UTC),
            datetime(2026, 11, 25, 9, tzinfo=UTC),
            extra={"outlook_event_id": "AAMkAD-1"},
        )
        failing = add_booking(world, datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC))
        plain = add_booking(world, datetime(2026, 11, 25, 12, tzinfo=UTC), datetime(2026, 11, 25, 13, tzinfo=UTC))
        db.session.add(
            Job(
                kind=OUTBOUND_BOOKING,
                key=outbound_key(integration.id, failing),
                state=JOB_FAILED,
                run_at=today,
                created_at=today,
                last_error="HTTP 503",
            )
        )
        db.session.commit()
    page = login(world.a.admin).get(f"/orgs/{world.a.org}/bookings").get_data(as_text=True)
    assert "tl-failed" in blocks(page)[failing] and "tl-failed" not in blocks(page)[linked]
    on_grid = re.findall(r'class="tl-block[^"]*" data-booking="(\d+)">(.*?)</li>', page, flags=re.S)
    block_html = {int(i): html for i, html in on_grid}
    assert "Linked to Outlook" in block_html[linked] and 'tl-flag-outlook">Outlook<' in block_html[linked]
    assert "Writing to Outlook failed" in block_html[failing]
    assert "Outlook" not in block_html[plain]


def test_another_organisations_failed_job_with_the_same_booking_number_marks_nothing(app, login, world, today):
    with app.app_context():
        other = add_rooms_integration(world.b, ["hall@fabrikam.example"])
        mine = add_booking(world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC))
        db.session.add(
            Job(
                kind=OUTBOUND_BOOKING,
                key=outbound_key(other.id, mine),
                state=JOB_FAILED,
                run_at=today,
                created_at=today,
            )
        )
        db.session.commit()
    page = login(world.a.admin).get(f"/orgs/{world.a.org}/bookings").get_data(as_text=True)
    assert "tl-failed" not in blocks(page)[mine]


def test_the_timeline_reads_its_bookings_in_one_query_however_many_there_are(app, login, world, today):
    client = login(world.a.admin)

    def statements_for_page():
        seen = []
        with app.app_context():
            engine = db.engine
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert client.get(f"/orgs/{world.a.org}/bookings").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return [s for s in seen if "FROM bookings" in s]

    with app.app_context():
        add_booking(world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC))
    one = statements_for_page()
    with app.app_context():
        for hour in range(10, 20):
            add_booking(world, datetime(2026, 11, 25, hour, tzinfo=UTC), datetime(2026, 11, 25, hour, 30, tzinfo=UTC))
    many = statements_for_page()
    assert len(one) == len(many) == 1


def test_another_organisations_admin_gets_404_for_the_timeline_and_the_room_page(app, login, world, today):
    with app.app_context():
        room = add_rooms_integration(world.a, ["room@contoso.example"]).links["room@contoso.example"]
    client = login(world.b.admin)
    assert client.get(f"/orgs/{world.a.org}/bookings").status_code == 404
    assert client.get(f"/orgs/{world.a.org}/bookings?span=week").status_code == 404
    assert client.get(f"/orgs/{world.a.org}/rooms/{room}").status_code == 404
    # Nor through the own organisation's address with another organisation's room.
    assert client.get(f"/orgs/{world.b.org}/rooms/{room}").status_code == 404


def test_a_rooms_page_shows_the_timeline_of_its_object_only_and_the_room_table_links_to_it(app, login, world, today):
    with app.app_context():
        hall = BookableObject(organisation_id=world.a.org, name="Hall")
        db.session.add(hall)
        db.session.commit()
        integration = add_rooms_integration(world.a, ["room@contoso.example"])
        room = integration.links["room@contoso.example"]
        in_room = add_booking(world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC))
        add_booking(
            world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC), object_id=hall.id
        )
    client = login(world.a.admin)
    page = client.get(f"/orgs/{world.a.org}/rooms/{room}?span=week").get_data(as_text=True)
    assert "room@contoso.example" in page and "Bookings of Room A" in page
    assert list(blocks(page)) == [in_room]
    assert "Mon 23 Nov – Sun 29 Nov 2026" in page
    assert f'href="/orgs/{world.a.org}/rooms/{room}?date=2026-11-30&amp;span=week" rel="next"' in page
    table = client.get(f"{integration.base}/rooms").get_data(as_text=True)
    assert f'href="/orgs/{world.a.org}/rooms/{room}">Bookings<' in table


def test_the_table_stays_one_click_away_with_subject_and_description_apart(app, login, world, today):
    with app.app_context():
        add_booking(
            world,
            datetime(2026, 11, 25, 8, tzinfo=UTC),
            datetime(2026, 11, 25, 9, tzinfo=UTC),
            remark="Quarterly review\n\nAgenda in the shared folder",
        )
    client = login(world.a.admin)
    timeline = client.get(f"/orgs/{world.a.org}/bookings").get_data(as_text=True)
    assert f'href="/orgs/{world.a.org}/bookings?view=table"' in timeline
    table = client.get(f"/orgs/{world.a.org}/bookings?view=table").get_data(as_text=True)
    assert "<th>Subject</th><th>Description</th>" in table
    assert '<td class="subject">Quarterly review</td>' in table
    assert '<td class="description">Agenda in the shared folder</td>' in table


def test_support_sees_any_organisations_timeline_with_only_that_organisations_bookings(app, login, world, today):
    with app.app_context():
        mine = add_booking(world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC))
        add_booking(world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC), key="b")
    response = login(world.support).get(f"/orgs/{world.a.org}/bookings")
    assert response.status_code == 200
    assert list(blocks(response.get_data(as_text=True))) == [mine]


def test_the_table_takes_the_same_object_and_status_filters_and_its_pages_keep_them(
    app, login, world, today, monkeypatch
):
    monkeypatch.setattr(org_routes, "BOOKINGS_PER_PAGE", 1)
    with app.app_context():
        hall = BookableObject(organisation_id=world.a.org, name="Hall")
        db.session.add(hall)
        db.session.commit()
        hall_id = hall.id
        add_booking(world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC))
        first = add_booking(
            world, datetime(2026, 11, 25, 8, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC), object_id=hall_id
        )
        add_booking(
            world,
            datetime(2026, 11, 25, 10, tzinfo=UTC),
            datetime(2026, 11, 25, 11, tzinfo=UTC),
            object_id=hall_id,
            status="Cancelled",
        )
        second = add_booking(
            world, datetime(2026, 11, 26, 8, tzinfo=UTC), datetime(2026, 11, 26, 9, tzinfo=UTC), object_id=hall_id
        )
    client = login(world.a.admin)
    confirmed = world.a.statuses["Confirmed"]
    query = f"view=table&start=2026-11-25&end=2026-11-30&object={hall_id}&status={confirmed}"
    page_one = client.get(f"/orgs/{world.a.org}/bookings?{query}").get_data(as_text=True)
    assert table_rows(page_one) == [first]
    assert "Page 1 of 2" in page_one
    next_link = html.unescape(re.search(r'<a href="([^"]+)">Next</a>', page_one).group(1))
    assert f"object={hall_id}" in next_link and f"status={confirmed}" in next_link
    assert table_rows(client.get(next_link).get_data(as_text=True)) == [second]


def table_rows(page):
    return [int(number) for number in re.findall(r'<td><a href="/orgs/\d+/bookings/(\d+)/edit">', page)]


def test_a_block_names_its_subject_and_the_phone_list_keeps_the_description_apart(app, login, world, today):
    with app.app_context():
        add_booking(
            world,
            datetime(2026, 11, 25, 8, tzinfo=UTC),
            datetime(2026, 11, 25, 9, tzinfo=UTC),
            remark="Quarterly review\n\nAgenda in the shared folder",
        )
    page = login(world.a.admin).get(f"/orgs/{world.a.org}/bookings?date=2026-11-25").get_data(as_text=True)
    assert '<span class="tl-subject">Quarterly review</span>' in page
    assert "<strong>Quarterly review</strong> Agenda in the shared folder" in page
