"""Injected trouble: 429s with Retry-After per mailbox or for all, and latency."""

import time

from tests.fakegraph.conftest import ROOM, ROOM_2, WIDE

DELTA = f"users/{ROOM}/calendarView/delta"


def test_throttling_one_mailbox_answers_429_with_retry_after_then_recovers(stand):
    token = stand.app_token()
    stand.control("throttle", {"mailbox": ROOM, "count": 2, "retry_after": 3})
    statuses = [stand.get(DELTA, token, query_string=WIDE) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "3"
    assert statuses[0].get_json()["error"]["code"] == "TooManyRequests"
    assert stand.get(f"users/{ROOM_2}/calendar", token).status_code == 200


def test_skip_lets_requests_pass_before_throttling_starts(stand):
    token = stand.app_token()
    stand.control("throttle", {"mailbox": ROOM, "count": 1, "skip": 2, "retry_after": 0.5})
    statuses = [stand.get(f"users/{ROOM}/calendar", token).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 200]


def test_a_global_rule_throttles_every_mailbox_and_subscriptions_and_can_be_a_503(stand):
    token = stand.app_token()
    stand.control("throttle", {"count": 2, "status": 503, "retry_after": 1})
    assert stand.get(f"users/{ROOM_2}/calendar", token).status_code == 503
    assert stand.call("GET", "subscriptions", token).status_code == 503
    assert stand.get(f"users/{ROOM}/calendar", token).status_code == 200
    stand.control("throttle", {"count": 5})
    stand.control("throttle", method="DELETE")
    assert stand.get(f"users/{ROOM}/calendar", token).status_code == 200


def test_latency_slows_every_request_down(stand):
    token = stand.app_token()
    stand.control("latency", {"seconds": 0.2, "mailbox": ROOM})
    started = time.monotonic()
    assert stand.get(f"users/{ROOM}/calendar", token).status_code == 200
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    stand.get(f"users/{ROOM_2}/calendar", token)
    assert time.monotonic() - started < 0.2


def test_the_request_log_shows_what_was_asked(stand):
    token = stand.app_token()
    stand.control("throttle", {"mailbox": ROOM, "count": 1, "retry_after": 1})
    stand.get(DELTA, token, query_string=WIDE)
    log = stand.control("requests?path=calendarView", method="GET")["value"]
    assert [(entry["method"], entry["status"]) for entry in log] == [("GET", 429)]
    assert "startDateTime" in log[0]["query"]
