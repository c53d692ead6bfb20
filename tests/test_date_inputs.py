"""Dates and date-times typed into the portal or sent to the API: years 1900-2999, wall-clock times that exist."""

import re
from datetime import UTC, datetime

import pytest

from tests.test_api import Api, booking_body, count_bookings, token_for
from tests.test_bookings import booking_data, field_errors, stored_bookings

OUT_OF_RANGE = "Enter a date between 1900 and 2999."
GAP = "02:30 does not exist on 28 March in Europe/Amsterdam; clocks go forward from 02:00 to 03:00."


@pytest.fixture
def api(app, client, world):
    return Api(client, token_for(app, world.a.org))


def filter_errors(response, field):
    return re.findall(rf'<p class="error" id="{field}-error">([^<]+)</p>', response.get_data(as_text=True))


def add_booking(client, world, start, end):
    response = client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, start, end))
    assert response.status_code == 302, response.get_data(as_text=True)


# --- The booking list's filter ---------------------------------------------------------------


@pytest.mark.parametrize(
    "query, field, label",
    [("end=9999-12-31", "end", "Until"), ("start=0001-01-01", "start", "From"), ("start=1899-12-31", "start", "From")],
)
def test_a_filter_date_out_of_range_is_shown_next_to_the_filter(login, world, query, field, label):
    client = login(world.a.admin)
    add_booking(client, world, "2026-12-01T10:00", "2026-12-01T11:00")
    response = client.get(f"/orgs/{world.a.org}/bookings?{query}")
    assert response.status_code == 200
    assert filter_errors(response, field) == [f"{label}: {OUT_OF_RANGE}"]
    # The typed value stays in the field, so the admin can correct it.
    assert query.split("=")[1] in response.get_data(as_text=True)


def test_an_unreadable_filter_date_is_an_error_and_the_valid_bound_still_applies(login, world):
    client = login(world.a.admin)
    add_booking(client, world, "2026-11-01T10:00", "2026-11-01T11:00")
    add_booking(client, world, "2026-12-01T10:00", "2026-12-01T11:00")
    response = client.get(f"/orgs/{world.a.org}/bookings?start=2026-11-15&end=tomorrow")
    assert response.status_code == 200
    assert filter_errors(response, "end") == ["Until: Not a valid date value."]
    page = response.get_data(as_text=True)
    assert "2026-12-01 10:00" in page and "2026-11-01 10:00" not in page


def test_the_filter_accepts_the_first_and_last_day_of_the_range(login, world):
    client = login(world.a.admin)
    add_booking(client, world, "2026-12-01T10:00", "2026-12-01T11:00")
    response = client.get(f"/orgs/{world.a.org}/bookings?start=1900-01-01&end=2999-12-31")
    assert response.status_code == 200
    assert filter_errors(response, "start") == filter_errors(response, "end") == []
    assert "2026-12-01 10:00" in response.get_data(as_text=True)


# --- The booking form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, end, field",
    [
        ("0001-01-01T10:00", "2026-12-01T11:00", "start_at"),
        ("2026-12-01T10:00", "9999-12-31T11:00", "end_at"),
        ("9999-12-31T10:00", "9999-12-31T11:00", "start_at"),
        ("0001-01-01T10:00", "0001-01-01T11:00", "end_at"),
        ("2026-12-01T10:00", "3000-01-01T00:00", "end_at"),
    ],
)
def test_the_booking_form_refuses_years_outside_1900_to_2999(app, login, world, start, end, field):
    client = login(world.a.admin)
    response = client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, start, end))
    assert response.status_code == 200
    assert field_errors(response, field) == [OUT_OF_RANGE]
    assert stored_bookings(app) == []


def test_the_booking_form_accepts_the_edges_of_the_range(app, login, world):
    client = login(world.a.admin)
    add_booking(client, world, "1900-01-01T00:00", "1900-01-01T01:00")
    add_booking(client, world, "2999-12-31T22:00", "2999-12-31T23:59")
    first, last = stored_bookings(app)
    # In 1900 Amsterdam kept its local mean time, 19 minutes 32 seconds ahead of UTC.
    assert first.start_at == datetime(1899, 12, 31, 23, 40, 28, tzinfo=UTC)
    assert last.end_at == datetime(2999, 12, 31, 22, 59, tzinfo=UTC)
    edit = client.get(f"/orgs/{world.a.org}/bookings/{first.id}/edit").get_data(as_text=True)
    assert 'value="1900-01-01T00:00"' in edit


@pytest.mark.parametrize(
    "start, end, field",
    [("2027-03-28T02:30", "2027-03-28T04:00", "start_at"), ("2027-03-28T01:00", "2027-03-28T02:30", "end_at")],
)
def test_a_time_the_clocks_skip_gets_its_own_message(app, login, world, start, end, field):
    client = login(world.a.admin)
    response = client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, start, end))
    assert response.status_code == 200
    assert field_errors(response, field) == [GAP]
    assert "The end must be after the start." not in response.get_data(as_text=True)
    assert stored_bookings(app) == []


def test_the_hour_after_the_gap_is_accepted(app, login, world):
    client = login(world.a.admin)
    add_booking(client, world, "2027-03-28T01:30", "2027-03-28T03:00")
    (booking,) = stored_bookings(app)
    assert (booking.start_at, booking.end_at) == (
        datetime(2027, 3, 28, 0, 30, tzinfo=UTC),
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC),
    )


def test_a_time_that_occurs_twice_when_clocks_go_back_is_read_as_the_first(app, login, world):
    client = login(world.a.admin)
    # 25 October 2026: 02:00-03:00 happens in summer time (UTC+2) and again in winter time (UTC+1).
    add_booking(client, world, "2026-10-25T02:30", "2026-10-25T04:00")
    (booking,) = stored_bookings(app)
    assert booking.start_at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert booking.end_at == datetime(2026, 10, 25, 3, 0, tzinfo=UTC)


# --- The API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, field",
    [
        ("?end=9999-12-31", "end"),
        ("?start=0001-01-01", "start"),
        ("?start=0001-01-01T00:00:00Z", "start"),
        ("?end=9999-12-31T23:59:59", "end"),
        ("?end=3000-01-01", "end"),
    ],
)
def test_an_api_query_date_out_of_range_answers_400_naming_the_parameter(api, query, field):
    response = api.get("/bookings" + query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "The query is not valid."
    assert body["fields"] == {field: f"Enter the {field} as a date between 1900 and 2999."}


def test_an_api_query_accepts_the_first_and_last_day_of_the_range(api, world):
    created = api.post("/bookings", booking_body(world)).get_json()
    response = api.get("/bookings?start=1900-01-01&end=2999-12-31")
    assert response.status_code == 200
    assert [b["id"] for b in response.get_json()["data"]] == [created["id"]]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"start": "0001-01-01T09:00:00Z"}, "start"),
        ({"start": "0001-01-01T09:00"}, "start"),
        ({"end": "9999-12-31T10:00:00Z"}, "end"),
        ({"end": "9999-12-31T23:59:59+14:00"}, "end"),
        ({"start": "1899-12-31T23:59:59Z"}, "start"),
    ],
)
def test_an_api_body_time_out_of_range_is_refused_naming_the_field(app, api, world, change, field):
    response = api.post("/bookings", {**booking_body(world), **change})
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "The booking is not valid."
    assert body["fields"] == {field: f"Enter the {field} as a date between 1900 and 2999."}
    assert count_bookings(app) == 0


def test_an_api_change_out_of_range_leaves_the_booking_as_it_was(app, api, world):
    booking = api.post("/bookings", booking_body(world)).get_json()
    response = api.patch(f"/bookings/{booking['id']}", {"end": "9999-12-31T10:00:00Z"})
    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == ["end"]
    assert api.get(f"/bookings/{booking['id']}").get_json()["end"] == booking["end"]


def test_an_api_body_accepts_the_edges_of_the_range(api, world):
    first = api.post("/bookings", booking_body(world, start="1900-01-01T00:00:00Z", end="1900-01-01T01:00:00Z"))
    last = api.post("/bookings", booking_body(world, start="2999-12-31T22:00:00Z", end="2999-12-31T23:59:59Z"))
    assert (first.status_code, last.status_code) == (201, 201)
    assert (first.get_json()["start"], last.get_json()["end"]) == ("1900-01-01T00:00:00Z", "2999-12-31T23:59:59Z")


def test_an_api_local_time_the_clocks_skip_gets_its_own_message(app, api, world):
    response = api.post("/bookings", booking_body(world, start="2027-03-28T02:30:00", end="2027-03-28T04:00:00"))
    assert response.status_code == 422
    assert response.get_json()["fields"] == {"start": GAP}
    assert count_bookings(app) == 0


def test_an_api_time_with_an_offset_is_never_in_a_gap(api, world):
    # 02:30+01:00 is a real moment (01:30 UTC); the offset says which clock it was read from.
    response = api.post(
        "/bookings", booking_body(world, start="2027-03-28T02:30:00+01:00", end="2027-03-28T04:00:00+02:00")
    )
    assert response.status_code == 201
    assert (response.get_json()["start"], response.get_json()["end"]) == (
        "2027-03-28T01:30:00Z",
        "2027-03-28T02:00:00Z",
    )
