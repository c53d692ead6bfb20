"""Events through Graph: create (transactionId, Teams, extended properties), read, update, delete, meeting copies."""

import pytest

from tests.fakegraph.conftest import ROOM, USER

PROPERTY = "String {5f3b9c1e-7a2d-4e8f-9b6c-2d1e0a4f7c35} Name ireserveBookingId"


def new_event(**extra):
    body = {
        "subject": "Booking [42]",
        "body": {"contentType": "text", "content": "Room for six"},
        "start": {"dateTime": "2026-12-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-02T10:00:00", "timeZone": "UTC"},
        "location": {"displayName": "Studio"},
    }
    body.update(extra)
    return body


@pytest.fixture
def token(stand):
    return stand.sign_in()["access_token"]


def test_create_read_update_delete(stand, token):
    created = stand.call("POST", "me/events", token, json=new_event())
    assert created.status_code == 201
    event = created.get_json()
    assert (event["type"], event["isOrganizer"], event["subject"]) == ("singleInstance", True, "Booking [42]")
    assert event["organizer"]["emailAddress"]["address"] == USER

    read = stand.get(f"me/events/{event['id']}", token, prefer='outlook.timezone="UTC"').get_json()
    assert read["start"] == {"dateTime": "2026-12-02T09:00:00.0000000", "timeZone": "UTC"}

    patched = stand.call(
        "PATCH", f"me/events/{event['id']}", token, json={"end": {"dateTime": "2026-12-02T11:00:00", "timeZone": "UTC"}}
    )
    assert patched.status_code == 200
    assert patched.get_json()["end"]["dateTime"] == "2026-12-02T11:00:00.0000000"
    assert patched.get_json()["subject"] == "Booking [42]"  # untouched properties stay
    assert patched.get_json()["changeKey"] != event["changeKey"]

    assert stand.call("DELETE", f"me/events/{event['id']}", token).status_code == 204
    gone = stand.get(f"me/events/{event['id']}", token)
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "ErrorItemNotFound"
    assert stand.call("PATCH", f"me/events/{event['id']}", token, json={"subject": "x"}).status_code == 404
    assert stand.call("DELETE", f"me/events/{event['id']}", token).status_code == 404


def test_a_repeated_transaction_id_returns_the_first_event_instead_of_a_second(stand, token):
    body = new_event(transactionId="0b5e1f4c-8d2a-4a7e-9b61-3c2d0e7f9a11")
    first = stand.call("POST", "me/events", token, json=body).get_json()
    second = stand.call("POST", "me/events", token, json=body)
    assert second.status_code == 201
    assert second.get_json()["id"] == first["id"]
    assert first["transactionId"] == "0b5e1f4c-8d2a-4a7e-9b61-3c2d0e7f9a11"
    listed = stand.get("me/events", token).get_json()["value"]
    assert len(listed) == 1
    other = stand.call("POST", "me/events", token, json=new_event(transactionId="another")).get_json()
    assert other["id"] != first["id"]


def test_a_teams_meeting_gets_a_join_url_and_stays_online(stand, token):
    event = stand.call(
        "POST", "me/events", token, json=new_event(isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness")
    ).get_json()
    assert event["isOnlineMeeting"] is True
    assert event["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    patched = stand.call("PATCH", f"me/events/{event['id']}", token, json={"isOnlineMeeting": False}).get_json()
    assert patched["isOnlineMeeting"] is True
    assert patched["onlineMeeting"]["joinUrl"] == event["onlineMeeting"]["joinUrl"]
    plain = stand.call("POST", "me/events", token, json=new_event()).get_json()
    assert plain["isOnlineMeeting"] is False and plain["onlineMeeting"] is None


def test_extended_properties_come_back_only_when_expanded_and_can_be_filtered_on(stand, token):
    event = stand.call(
        "POST", "me/events", token, json=new_event(singleValueExtendedProperties=[{"id": PROPERTY, "value": "42"}])
    ).get_json()
    stand.call("POST", "me/events", token, json=new_event(subject="Other"))
    assert "singleValueExtendedProperties" not in event
    expanded = stand.get(
        f"me/events/{event['id']}",
        token,
        query_string={"$expand": f"singleValueExtendedProperties($filter=id eq '{PROPERTY}')"},
    )
    assert expanded.get_json()["singleValueExtendedProperties"] == [{"id": PROPERTY, "value": "42"}]
    found = stand.get(
        "me/events",
        token,
        query_string={"$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROPERTY}' and ep/value eq '42')"},
    ).get_json()
    assert [e["id"] for e in found["value"]] == [event["id"]]
    refused = stand.get("me/events", token, query_string={"$filter": "start/dateTime ge '2026-01-01'"})
    assert refused.status_code == 400


def test_attendees_are_kept_and_a_room_attendee_gets_its_own_copy(stand, token):
    attendees = [
        {"emailAddress": {"address": "guest@customer.example", "name": "Guest"}, "type": "required"},
        {"emailAddress": {"address": ROOM, "name": "Room 1"}, "type": "resource"},
    ]
    event = stand.call("POST", "me/events", token, json=new_event(attendees=attendees)).get_json()
    assert [a["emailAddress"]["address"] for a in event["attendees"]] == ["guest@customer.example", ROOM]
    room_copy = stand.get(f"users/{ROOM}/events", stand.app_token()).get_json()["value"]
    assert len(room_copy) == 1
    assert room_copy[0]["id"] != event["id"] and room_copy[0]["iCalUId"] == event["iCalUId"]
    assert (room_copy[0]["isOrganizer"], room_copy[0]["responseStatus"]["response"]) == (False, "accepted")

    stand.call("PATCH", f"me/events/{event['id']}", token, json={"subject": "Renamed [42]"})
    assert stand.get(f"users/{ROOM}/events", stand.app_token()).get_json()["value"][0]["subject"] == "Renamed [42]"
    stand.call("DELETE", f"me/events/{event['id']}", token)
    cancelled = stand.get(f"users/{ROOM}/events", stand.app_token()).get_json()["value"][0]
    assert (cancelled["isCancelled"], cancelled["subject"]) == (True, "Canceled: Renamed [42]")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"colour": "red"}, "RequestBodyRead"),
        ({"end": {"dateTime": "2026-12-02T08:00:00", "timeZone": "UTC"}}, "ErrorCalendarEndDateIsEarlierThanStartDate"),
        ({"start": {"dateTime": "2026-12-02T08:00:00", "timeZone": "Mars/Olympus"}}, "TimeZoneNotSupportedException"),
        ({"isAllDay": True}, "ErrorInvalidRequest"),
    ],
)
def test_invalid_changes_are_refused_and_change_nothing(stand, token, change, code):
    event = stand.call("POST", "me/events", token, json=new_event()).get_json()
    refused = stand.call("PATCH", f"me/events/{event['id']}", token, json=change)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == code
    assert stand.get(f"me/events/{event['id']}", token).get_json()["changeKey"] == event["changeKey"]


def test_all_day_events_are_created_midnight_to_midnight(stand, token):
    body = new_event(
        isAllDay=True,
        start={"dateTime": "2025-05-29T00:00:00", "timeZone": "W. Europe Standard Time"},
        end={"dateTime": "2025-05-30T00:00:00", "timeZone": "W. Europe Standard Time"},
    )
    event = stand.call("POST", "me/events", token, json=body)
    assert event.status_code == 201
    assert event.get_json()["start"] == {"dateTime": "2025-05-29T00:00:00.0000000", "timeZone": "UTC"}


def test_only_the_organizer_may_cancel(stand, token):
    event = stand.call(
        "POST", "me/events", token, json=new_event(attendees=[{"emailAddress": {"address": ROOM}, "type": "resource"}])
    ).get_json()
    reader = stand.app_token()
    room_event = stand.get(f"users/{ROOM}/events", reader).get_json()["value"][0]
    writer_id = "cccccccc-0000-0000-0000-000000000000"
    stand.control(
        "tenants/contoso.example/apps",
        {"client_id": writer_id, "client_secret": "w", "permissions": ["Calendars.ReadWrite"]},
    )
    writer = stand.token(
        grant_type="client_credentials",
        client_id=writer_id,
        client_secret="w",
        scope="https://graph.microsoft.com/.default",
    ).get_json()["access_token"]
    assert stand.call("POST", f"users/{ROOM}/events/{room_event['id']}/cancel", writer, json={}).status_code == 400
    assert stand.call("POST", f"me/events/{event['id']}/cancel", token, json={"comment": "Sorry"}).status_code == 202
    assert stand.get(f"users/{ROOM}/events/{room_event['id']}", reader).get_json()["isCancelled"] is True


def test_control_changes_reach_every_copy_of_a_meeting(stand):
    created = stand.appointment(
        organizer=USER, attendees=[ROOM], subject="Review", start="2026-12-03T10:00", end="2026-12-03T11:00"
    )
    assert set(created["events"]) == {USER, ROOM}
    stand.control(
        f"appointments/{created['uid']}/move",
        {"start": "2026-12-04T10:00", "end": "2026-12-04T12:00", "time_zone": "UTC"},
    )
    token = stand.app_token()
    room_event = stand.get(f"users/{ROOM}/events/{created['events'][ROOM]}", token).get_json()
    assert (room_event["start"]["dateTime"], room_event["end"]["dateTime"]) == (
        "2026-12-04T10:00:00.0000000",
        "2026-12-04T12:00:00.0000000",
    )
    stand.control(f"appointments/{created['uid']}/delete", {"mailbox": ROOM})
    assert stand.get(f"users/{ROOM}/events/{created['events'][ROOM]}", token).status_code == 404
    user_event = stand.get("me/events", stand.sign_in()["access_token"]).get_json()["value"][0]
    assert user_event["isCancelled"] is False  # a room removing its copy cancels nothing
