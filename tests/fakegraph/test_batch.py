"""$batch: per-item answers, the 20-item limit, items throttled on their own, failed dependencies."""

from datetime import UTC, datetime, timedelta

from tests.fakegraph.conftest import DENIED_ROOM, ROOM, ROOM_2


def batch(stand, token, requests):
    return stand.call("POST", "$batch", token, json={"requests": requests})


def calendar_read(item_id, mailbox):
    return {
        "id": item_id,
        "method": "GET",
        "url": f"/users/{mailbox}/calendar?$select=id",
        "headers": {"Prefer": 'IdType="ImmutableId"'},
    }


def test_each_item_gets_its_own_status_headers_and_body(stand):
    answer = batch(
        stand,
        stand.app_token(),
        [calendar_read("1", ROOM), calendar_read("2", DENIED_ROOM), calendar_read("3", "nobody@contoso.example")],
    )
    assert answer.status_code == 200
    by_id = {item["id"]: item for item in answer.get_json()["responses"]}
    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["id"]
    assert by_id["1"]["headers"]["Content-Type"].startswith("application/json")
    assert (by_id["2"]["status"], by_id["2"]["body"]["error"]["message"]) == (403, "Access to OData is disabled.")
    assert (by_id["3"]["status"], by_id["3"]["body"]["error"]["code"]) == (404, "ErrorInvalidUser")


def test_at_most_20_requests_with_unique_ids(stand):
    token = stand.app_token()
    assert batch(stand, token, [calendar_read(str(n), ROOM) for n in range(21)]).status_code == 400
    assert batch(stand, token, [calendar_read("a", ROOM), calendar_read("A", ROOM_2)]).status_code == 400
    assert batch(stand, token, [calendar_read(str(n), ROOM) for n in range(20)]).status_code == 200
    assert stand.call("POST", "$batch", token, json={"requests": []}).status_code == 400


def test_a_throttled_item_answers_429_with_its_own_retry_after_while_the_batch_answers_200(stand):
    stand.control("throttle", {"mailbox": ROOM_2, "count": 1, "retry_after": 2.5})
    answer = batch(stand, stand.app_token(), [calendar_read("1", ROOM), calendar_read("2", ROOM_2)])
    assert answer.status_code == 200
    by_id = {item["id"]: item for item in answer.get_json()["responses"]}
    assert by_id["1"]["status"] == 200
    assert by_id["2"]["status"] == 429
    assert by_id["2"]["headers"]["Retry-After"] == "2.5"
    assert by_id["2"]["body"]["error"]["code"] == "TooManyRequests"


def test_an_item_whose_dependency_failed_gets_424(stand):
    requests = [
        calendar_read("1", DENIED_ROOM),
        {**calendar_read("2", ROOM), "dependsOn": ["1"]},
        {**calendar_read("3", ROOM_2), "dependsOn": ["2"]},
    ]
    responses = batch(stand, stand.app_token(), requests).get_json()["responses"]
    assert [(item["id"], item["status"]) for item in responses] == [("1", 403), ("2", 424), ("3", 424)]


def test_items_may_write_with_a_body(stand, receiver):
    token = stand.app_token()
    soon = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    subscription = stand.call(
        "POST",
        "subscriptions",
        token,
        json={
            "changeType": "updated",
            "notificationUrl": f"{receiver.url}/n",
            "resource": f"users/{ROOM}/events",
            "expirationDateTime": soon,
        },
    ).get_json()
    renewal = {
        "id": "renew",
        "method": "PATCH",
        "url": f"/subscriptions/{subscription['id']}",
        "body": {"expirationDateTime": later},
        "headers": {"Content-Type": "application/json"},
    }
    item = batch(stand, token, [renewal]).get_json()["responses"][0]
    assert item["status"] == 200 and item["body"]["expirationDateTime"] == later
    del renewal["headers"]
    assert batch(stand, token, [renewal]).status_code == 400  # a body needs a Content-Type


def test_the_batch_carries_its_token_to_the_items(stand):
    answer = stand.client.post("/v1.0/$batch", json={"requests": [calendar_read("1", ROOM)]})
    assert answer.get_json()["responses"][0]["status"] == 401
