"""Recurring series: occurrences and exceptions, cancelled ones left out, masters never in calendarView."""

from datetime import date

import pytest

from tests.fakegraph.conftest import ROOM, USER
from tools.fakegraph import recurrence

DELTA = f"users/{ROOM}/calendarView/delta"
DECEMBER = {"startDateTime": "2026-12-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"}


def series(stand, **fields):
    spec = {"type": "weekly", "days_of_week": ["monday", "wednesday"], "count": 6}
    spec.update(fields.pop("recurrence", {}))
    created = stand.appointment(
        attendees=[ROOM],
        subject="Stand-up",
        start="2026-12-07T09:00",
        end="2026-12-07T09:15",
        recurrence=spec,
        **fields,
    )
    return created["uid"], created["events"][ROOM]


def live(items):
    return [item for item in items if "@removed" not in item]


def test_a_weekly_series_comes_as_occurrences_and_never_as_its_master(stand):
    _, master_id = series(stand)
    token = stand.app_token()
    items, _, _ = stand.delta_round(DELTA, token, DECEMBER)
    assert [item["start"]["dateTime"][:10] for item in items] == [
        "2026-12-07",
        "2026-12-09",
        "2026-12-14",
        "2026-12-16",
        "2026-12-21",
        "2026-12-23",
    ]
    assert {item["type"] for item in items} == {"occurrence"}
    assert {item["seriesMasterId"] for item in items} == {master_id}
    assert items[0]["originalStart"] == "2026-12-07T09:00:00Z"
    assert len({item["id"] for item in items}) == 6 and master_id not in {item["id"] for item in items}
    assert len({item["iCalUId"] for item in items}) == 6  # v1.0: one per occurrence

    master = stand.get(f"users/{ROOM}/events/{master_id}", token).get_json()
    assert master["type"] == "seriesMaster"
    assert master["recurrence"]["pattern"]["daysOfWeek"] == ["monday", "wednesday"]
    assert master["recurrence"]["range"] == {
        "type": "numbered",
        "startDate": "2026-12-07",
        "recurrenceTimeZone": "UTC",
        "numberOfOccurrences": 6,
    }
    occurrence = stand.get(f"users/{ROOM}/events/{items[1]['id']}", token).get_json()
    assert (occurrence["type"], occurrence["seriesMasterId"]) == ("occurrence", master_id)


def test_only_occurrences_inside_the_window_are_expanded(stand):
    series(stand, recurrence={"type": "daily", "count": None, "until": "2027-03-01", "days_of_week": None})
    items, _, _ = stand.delta_round(
        DELTA, stand.app_token(), {"startDateTime": "2026-12-10T00:00:00Z", "endDateTime": "2026-12-13T00:00:00Z"}
    )
    assert [item["start"]["dateTime"][:10] for item in items] == ["2026-12-10", "2026-12-11", "2026-12-12"]


def test_a_moved_occurrence_becomes_an_exception_under_the_same_id(stand):
    uid, _ = series(stand)
    token = stand.app_token()
    before, _, delta_link = stand.delta_round(DELTA, token, DECEMBER)
    stand.control(
        f"appointments/{uid}/occurrences/2026-12-09/move",
        {"start": "2026-12-10T15:00", "end": "2026-12-10T15:30", "time_zone": "UTC"},
    )
    changes, _, _ = stand.delta_round(delta_link, token)
    assert len(changes) == 1
    exception = changes[0]
    assert exception["type"] == "exception"
    assert exception["id"] == before[1]["id"]
    assert exception["start"]["dateTime"] == "2026-12-10T15:00:00.0000000"
    assert exception["originalStart"] == "2026-12-09T09:00:00Z"


def test_a_cancelled_occurrence_is_removed_and_left_out(stand):
    uid, _ = series(stand)
    token = stand.app_token()
    before, _, delta_link = stand.delta_round(DELTA, token, DECEMBER)
    stand.control(f"appointments/{uid}/occurrences/2026-12-14/cancel")
    changes, _, _ = stand.delta_round(delta_link, token)
    assert changes == [
        {"@odata.type": "#microsoft.graph.event", "id": before[2]["id"], "@removed": {"reason": "deleted"}}
    ]
    again, _, _ = stand.delta_round(DELTA, token, DECEMBER)
    assert len(again) == 5
    assert stand.get(f"users/{ROOM}/events/{before[2]['id']}", token).status_code == 404
    view = stand.get(f"users/{ROOM}/calendarView", token, query_string=DECEMBER).get_json()["value"]
    assert len(view) == 5


def test_changing_the_whole_series_resends_every_occurrence(stand):
    uid, _ = series(stand)
    token = stand.app_token()
    _, _, delta_link = stand.delta_round(DELTA, token, DECEMBER)
    stand.control(f"appointments/{uid}/update", {"subject": "Daily scrum"})
    changes, _, _ = stand.delta_round(delta_link, token)
    assert [item["subject"] for item in changes] == ["Daily scrum"] * 6


def test_a_series_keeps_its_wall_clock_time_across_daylight_saving(stand):
    stand.appointment(
        attendees=[ROOM],
        subject="Weekly",
        start="2027-03-22T09:00",
        end="2027-03-22T10:00",
        time_zone="Europe/Amsterdam",
        recurrence={"type": "weekly", "count": 2},
    )
    window = {"startDateTime": "2027-03-01T00:00:00Z", "endDateTime": "2027-04-30T00:00:00Z"}
    items, _, _ = stand.delta_round(DELTA, stand.app_token(), window)
    assert [item["start"]["dateTime"] for item in items] == [
        "2027-03-22T08:00:00.0000000",
        "2027-03-29T07:00:00.0000000",
    ]


def test_graph_patch_and_delete_on_an_occurrence_touch_only_that_occurrence(stand):
    token = stand.sign_in()["access_token"]
    body = {
        "subject": "Gym",
        "start": {"dateTime": "2026-12-01T07:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-01T08:00:00", "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": "daily", "interval": 2},
            "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 4},
        },
    }
    master = stand.call("POST", "me/events", token, json=body).get_json()
    assert master["type"] == "seriesMaster"
    instances = stand.get(f"me/events/{master['id']}/instances", token, query_string=DECEMBER).get_json()["value"]
    assert [i["start"]["dateTime"][:10] for i in instances] == ["2026-12-01", "2026-12-03", "2026-12-05", "2026-12-07"]
    patched = stand.call(
        "PATCH",
        f"me/events/{instances[1]['id']}",
        token,
        json={
            "subject": "Gym, later",
            "start": {"dateTime": "2026-12-03T18:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-03T19:00:00", "timeZone": "UTC"},
        },
    )
    assert patched.status_code == 200 and patched.get_json()["type"] == "exception"
    assert patched.get_json()["subject"] == "Gym, later"
    assert stand.call("DELETE", f"me/events/{instances[2]['id']}", token).status_code == 204
    view = stand.get(f"users/{USER}/calendarView", token, query_string=DECEMBER).get_json()["value"]
    assert [(i["subject"], i["start"]["dateTime"][:13]) for i in view] == [
        ("Gym", "2026-12-01T07"),
        ("Gym, later", "2026-12-03T18"),
        ("Gym", "2026-12-07T07"),
    ]


def test_unsupported_patterns_are_refused_with_a_reason(stand):
    token = stand.sign_in()["access_token"]
    body = {
        "subject": "x",
        "start": {"dateTime": "2026-12-01T07:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-01T08:00:00", "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": "relativeYearly", "interval": 1},
            "range": {"type": "noEnd", "startDate": "2026-12-01"},
        },
    }
    refused = stand.call("POST", "me/events", token, json=body)
    assert refused.status_code == 400
    assert "relativeYearly" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("pattern", "rng", "expected"),
    [
        (
            {"type": "daily", "interval": 3},
            {"type": "numbered", "numberOfOccurrences": 3},
            ["2027-01-30", "2027-02-02", "2027-02-05"],
        ),
        (
            {"type": "weekly", "interval": 2, "daysOfWeek": ["saturday", "sunday"], "firstDayOfWeek": "monday"},
            {"type": "endDate", "endDate": "2027-02-14"},
            ["2027-01-30", "2027-01-31", "2027-02-13", "2027-02-14"],
        ),
        (
            {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 30},
            {"type": "numbered", "numberOfOccurrences": 3},
            ["2027-01-30", "2027-03-30", "2027-04-30"],
        ),
    ],
)
def test_pattern_dates(pattern, rng, expected):
    normalised = recurrence.validate(
        {"pattern": pattern, "range": {"startDate": "2027-01-30", **rng}}, date(2027, 1, 30)
    )
    assert [day.isoformat() for day in recurrence.occurrence_dates(normalised)] == expected
