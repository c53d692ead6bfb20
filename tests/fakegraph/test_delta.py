"""calendarView delta: paging, replays, @removed, expired tokens, time zones and immutable ids."""

import pytest

from tests.fakegraph.conftest import ROOM, ROOM_2

DELTA = f"users/{ROOM}/calendarView/delta"
WINDOW = {"startDateTime": "2026-12-01T00:00:00Z", "endDateTime": "2026-12-31T00:00:00Z"}


def book(stand, day, subject, room=ROOM, start="09:00", end="10:00", **fields):
    created = stand.appointment(
        attendees=[room], subject=subject, start=f"2026-12-{day:02d}T{start}", end=f"2026-12-{day:02d}T{end}", **fields
    )
    return created["uid"], created["events"][room]


def subjects(items):
    return sorted(item["subject"] for item in items if "@removed" not in item)


def removed_ids(items):
    return sorted(item["id"] for item in items if "@removed" in item)


def test_a_first_round_pages_with_absolute_links_and_ends_with_a_delta_link(stand):
    for day in range(1, 6):
        book(stand, day, f"Meeting {day}")
    book(stand, 2, "Other room", room=ROOM_2)
    token = stand.app_token()
    first = stand.get(DELTA, token, prefer="odata.maxpagesize=2", query_string=WINDOW).get_json()
    assert first["@odata.nextLink"].startswith(f"http://localhost/v1.0/{DELTA}?$skiptoken=")
    assert "@odata.deltaLink" not in first and len(first["value"]) == 2

    items, pages, delta_link = stand.delta_round(DELTA, token, WINDOW, page_size=2)
    assert pages == 3
    assert subjects(items) == [f"Meeting {day}" for day in range(1, 6)]
    assert len({item["id"] for item in items}) == 5
    assert delta_link.startswith(f"http://localhost/v1.0/{DELTA}?$deltatoken=")
    assert all(item["@odata.type"] == "#microsoft.graph.event" for item in items)


def test_without_a_page_size_pages_hold_ten(stand):
    for day in range(1, 13):
        book(stand, day, f"Meeting {day}")
    items, pages, _ = stand.delta_round(DELTA, stand.app_token(), WINDOW)
    assert (len(items), pages) == (12, 2)


def test_the_first_request_needs_the_window(stand):
    response = stand.get(DELTA, stand.app_token())
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "ErrorInvalidParameter"


def test_only_events_overlapping_the_window_come_back(stand):
    book(stand, 1, "Inside")
    stand.appointment(attendees=[ROOM], subject="Across the start", start="2026-11-30T23:00", end="2026-12-01T01:00")
    stand.appointment(attendees=[ROOM], subject="Before", start="2026-11-20T09:00", end="2026-11-20T10:00")
    items, _, _ = stand.delta_round(DELTA, stand.app_token(), WINDOW)
    assert subjects(items) == ["Across the start", "Inside"]


def test_page_and_delta_links_can_be_replayed_with_the_same_answer(stand):
    for day in range(1, 4):
        book(stand, day, f"Meeting {day}")
    token = stand.app_token()
    first = stand.get(DELTA, token, prefer="odata.maxpagesize=2", query_string=WINDOW).get_json()
    page_again = [stand.get(first["@odata.nextLink"], token, prefer="odata.maxpagesize=2").get_json() for _ in range(2)]
    assert page_again[0]["value"] == page_again[1]["value"]

    _, _, delta_link = stand.delta_round(DELTA, token, WINDOW)
    book(stand, 20, "Added later")
    replays = [stand.delta_round(delta_link, token)[0] for _ in range(2)]
    assert subjects(replays[0]) == subjects(replays[1]) == ["Added later"]


def test_a_round_without_changes_is_empty_and_ends_with_a_delta_link(stand):
    book(stand, 3, "Quiet")
    token = stand.app_token()
    _, _, delta_link = stand.delta_round(DELTA, token, WINDOW)
    items, pages, next_delta_link = stand.delta_round(delta_link, token)
    assert (items, pages) == ([], 1)
    assert next_delta_link.startswith("http://localhost/")


def test_changes_come_again_deletions_and_moves_out_of_the_window_come_as_removed(stand):
    changed_uid, changed_id = book(stand, 3, "Will change")
    deleted_uid, deleted_id = book(stand, 4, "Will be deleted")
    moved_uid, moved_id = book(stand, 5, "Will move out")
    book(stand, 6, "Untouched")
    token = stand.app_token()
    _, _, delta_link = stand.delta_round(DELTA, token, WINDOW)

    stand.control(
        f"appointments/{changed_uid}/move", {"start": "2026-12-03T13:00", "end": "2026-12-03T14:00", "time_zone": "UTC"}
    )
    stand.control(f"appointments/{deleted_uid}", method="DELETE")
    stand.control(
        f"appointments/{moved_uid}/move", {"start": "2027-02-01T09:00", "end": "2027-02-01T10:00", "time_zone": "UTC"}
    )
    items, _, _ = stand.delta_round(delta_link, token)

    assert subjects(items) == ["Will change"]
    changed = next(item for item in items if "@removed" not in item)
    assert changed["id"] == changed_id  # immutable: a move keeps the id
    assert changed["start"]["dateTime"] == "2026-12-03T13:00:00.0000000"
    assert removed_ids(items) == sorted([deleted_id, moved_id])
    tombstone = next(item for item in items if "@removed" in item)
    assert set(tombstone) == {"@odata.type", "id", "@removed"}
    assert tombstone["@removed"] == {"reason": "deleted"}
    # A moved event is still there, outside the window, under the same id.
    assert stand.get(f"users/{ROOM}/events/{moved_id}", token).get_json()["subject"] == "Will move out"
    assert stand.get(f"users/{ROOM}/events/{deleted_id}", token).status_code == 404


def test_events_added_outside_the_window_are_reported_removed_as_graph_does(stand):
    token = stand.app_token()
    _, _, delta_link = stand.delta_round(DELTA, token, WINDOW)
    _, outside_id = book(stand, 1, "Next year", start="09:00", end="10:00")
    stand.control(
        "appointments",
        {
            "organizer": "x@outside.example",
            "attendees": [ROOM],
            "subject": "Far away",
            "start": "2028-01-01T09:00",
            "end": "2028-01-01T10:00",
            "time_zone": "UTC",
        },
    )
    items, _, _ = stand.delta_round(delta_link, token)
    assert subjects(items) == ["Next year"]
    assert len(removed_ids(items)) == 1 and outside_id not in removed_ids(items)


def test_cancelling_a_meeting_shows_the_rooms_copy_cancelled(stand):
    uid, room_event = book(stand, 8, "Planning", organizer="alex@contoso.example")
    token = stand.app_token()
    _, _, delta_link = stand.delta_round(DELTA, token, WINDOW)
    stand.control(f"appointments/{uid}/cancel")
    items, _, _ = stand.delta_round(delta_link, token)
    assert [(i["id"], i["isCancelled"], i["subject"]) for i in items] == [(room_event, True, "Canceled: Planning")]


@pytest.mark.parametrize("via", ["delta link", "page link"])
def test_expired_tokens_answer_410_sync_state_not_found(stand, via):
    for day in range(1, 4):
        book(stand, day, f"Meeting {day}")
    token = stand.app_token()
    first = stand.get(DELTA, token, prefer="odata.maxpagesize=1", query_string=WINDOW).get_json()
    _, _, delta_link = stand.delta_round(DELTA, token, WINDOW)
    stand.control(f"mailboxes/{ROOM}/expire-delta")
    link = delta_link if via == "delta link" else first["@odata.nextLink"]
    response = stand.get(link, token)
    assert response.status_code == 410
    error = response.get_json()["error"]
    assert error["code"] == "SyncStateNotFound"
    assert error["message"].startswith("The sync state generation is not found")
    # A new initial round works again.
    assert len(stand.delta_round(DELTA, token, WINDOW)[0]) == 3


def test_a_token_of_one_mailbox_is_unknown_to_another(stand):
    token = stand.app_token()
    _, _, delta_link = stand.delta_round(DELTA, token, WINDOW)
    elsewhere = delta_link.replace(ROOM, ROOM_2)
    assert stand.get(elsewhere, token).status_code == 410


def test_times_come_back_in_utc_or_in_the_preferred_zone(stand):
    stand.appointment(
        attendees=[ROOM],
        subject="Amsterdam",
        start="2026-12-02T09:00",
        end="2026-12-02T10:30",
        time_zone="W. Europe Standard Time",
    )
    token = stand.app_token()
    utc = stand.get(DELTA, token, prefer='outlook.timezone="UTC"', query_string=WINDOW).get_json()["value"][0]
    assert utc["start"] == {"dateTime": "2026-12-02T08:00:00.0000000", "timeZone": "UTC"}
    assert utc["originalStartTimeZone"] == "W. Europe Standard Time"
    plain = stand.get(DELTA, token, query_string=WINDOW).get_json()["value"][0]
    assert plain["start"]["timeZone"] == "UTC"  # UTC without the header too
    local = stand.get(DELTA, token, prefer='outlook.timezone="Europe/Amsterdam"', query_string=WINDOW)
    assert local.get_json()["value"][0]["end"] == {
        "dateTime": "2026-12-02T10:30:00.0000000",
        "timeZone": "Europe/Amsterdam",
    }
    assert 'outlook.timezone="Europe/Amsterdam"' in local.headers["Preference-Applied"]


def test_all_day_events_run_midnight_to_midnight_in_any_zone(stand):
    stand.appointment(
        attendees=[ROOM],
        subject="Closed",
        day=0,
        is_all_day=True,
        start="2026-12-24T00:00",
        end="2026-12-26T00:00",
        time_zone="Europe/Amsterdam",
    )
    token = stand.app_token()
    for zone in ("UTC", "Pacific Standard Time"):
        item = stand.get(DELTA, token, prefer=f'outlook.timezone="{zone}"', query_string=WINDOW).get_json()["value"][0]
        assert item["isAllDay"] is True
        assert (item["start"]["dateTime"], item["end"]["dateTime"]) == (
            "2026-12-24T00:00:00.0000000",
            "2026-12-26T00:00:00.0000000",
        )
        assert item["start"]["timeZone"] == zone


def test_bodies_read_as_html_unless_text_is_preferred(stand):
    book(stand, 2, "With notes", body="Bring <slides>\nand coffee")
    token = stand.app_token()
    html = stand.get(DELTA, token, query_string=WINDOW).get_json()["value"][0]["body"]
    assert html["contentType"] == "html" and "Bring &lt;slides&gt;<br>" in html["content"]
    text = stand.get(DELTA, token, prefer='outlook.body-content-type="text"', query_string=WINDOW).get_json()
    assert text["value"][0]["body"] == {"contentType": "text", "content": "Bring <slides>\nand coffee"}
