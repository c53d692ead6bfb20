"""GraphClient.batch: chunking, ordering, per-item throttling and errors."""

import json
from pathlib import Path

import pytest
import responses

from app.graph.client import BatchRequest, GraphClient
from app.graph.errors import GraphBadRequest, GraphNotFound, GraphThrottled

BASE = "https://graph.microsoft.com/v1.0"
BATCH = f"{BASE}/$batch"
TOKEN = "eyJ0eXAiOiJKV1QiLCJub25jZSI6.batch-access-token.c2lnbmF0dXJl"
FIXTURES = Path(__file__).parent / "fixtures" / "graph"


class FakeTokens:
    def __init__(self):
        self.get_calls = 0
        self.refresh_calls = 0

    def get_token(self):
        self.get_calls += 1
        return TOKEN

    def refresh_token(self):
        self.refresh_calls += 1
        return TOKEN


class TopOfRange:
    def uniform(self, low, high):
        return high


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(sleeps):
    def make(**kwargs):
        return GraphClient(BASE, FakeTokens(), sleep=sleeps.append, rng=TopOfRange(), **kwargs)

    return make


@pytest.fixture
def client(make_client):
    return make_client()


def sent_items(call):
    return json.loads(call.request.body)["requests"]


def sent_ids(call):
    return [item["id"] for item in sent_items(call)]


def answer(status=200, body=None, headers=None):
    """Build a responses callback answering each item via *status* and *body*.

    *status* and *body* may be callables of the item id.
    """

    def callback(request):
        items = json.loads(request.body)["requests"]
        replies = []
        for item in items:
            code = status(item["id"]) if callable(status) else status
            reply = {"id": item["id"], "status": code, "headers": headers or {}}
            reply["body"] = body(item["id"]) if callable(body) else body or {"id": item["id"]}
            replies.append(reply)
        return 200, {}, json.dumps({"responses": replies})

    return callback


def get_requests(count):
    return [BatchRequest(str(n), "GET", f"/users/room{n}@contoso.com/calendar") for n in range(count)]


def test_45_requests_go_out_as_20_20_and_5(mocked, client):
    mocked.add_callback(responses.POST, BATCH, callback=answer())
    requests_list = get_requests(45)

    results = client.batch(requests_list)

    assert [len(sent_items(call)) for call in mocked.calls] == [20, 20, 5]
    assert [r.id for r in results] == [r.id for r in requests_list]
    assert all(r.ok and r.status == 200 for r in results)
    assert sent_ids(mocked.calls[2]) == [str(n) for n in range(40, 45)]


def test_results_follow_input_order_when_answers_are_shuffled(mocked, client):
    replies = [
        {"id": "c", "status": 204, "headers": {}},
        {"id": "a", "status": 200, "headers": {}, "body": {"displayName": "Calendar A"}},
        {"id": "b", "status": 201, "headers": {}, "body": {"id": "AAMkB"}},
    ]
    mocked.post(BATCH, json={"responses": replies})

    results = client.batch(
        [
            BatchRequest("a", "GET", "/users/a@contoso.com/calendar"),
            BatchRequest("b", "POST", "/users/b@contoso.com/events", body={"subject": "Sync"}),
            BatchRequest("c", "DELETE", "/users/c@contoso.com/events/AAMkC"),
        ]
    )

    assert [(r.id, r.status) for r in results] == [("a", 200), ("b", 201), ("c", 204)]
    assert results[0].body == {"displayName": "Calendar A"}
    assert results[1].body == {"id": "AAMkB"}


def test_throttled_items_are_retried_alone_after_the_longest_retry_after(mocked, client, sleeps):
    first = json.loads((FIXTURES / "batch-response.json").read_text())["responses"]
    first = [reply for reply in first if reply["id"] != "4"]
    first.append(
        {
            "id": "5",
            "status": 429,
            "headers": {"Retry-After": "4"},
            "body": {"error": {"code": "TooManyRequests", "message": "Retry later"}},
        }
    )
    mocked.post(BATCH, json={"responses": first})
    mocked.post(
        BATCH,
        json={
            "responses": [
                {"id": "5", "status": 200, "headers": {}, "body": {"id": "five"}},
                {"id": "3", "status": 200, "headers": {}, "body": {"id": "three"}},
            ]
        },
    )

    results = client.batch([BatchRequest(i, "GET", f"/users/room{i}@contoso.com/events") for i in "1235"])

    assert sent_ids(mocked.calls[1]) == ["3", "5"]
    assert sleeps == [10.0]
    assert all(r.ok for r in results)
    assert [r.body.get("id") for r in results[2:]] == ["three", "five"]


def test_items_still_throttled_keep_their_error(mocked, make_client, sleeps):
    mocked.add_callback(
        responses.POST,
        BATCH,
        callback=answer(
            status=lambda item_id: 429 if item_id == "slow" else 200,
            headers={"Retry-After": "2"},
        ),
    )

    results = make_client(max_attempts=3).batch(
        [
            BatchRequest("fast", "GET", "/users/a@contoso.com/calendar"),
            BatchRequest("slow", "GET", "/users/b@contoso.com/calendar"),
        ]
    )

    assert [sent_ids(call) for call in mocked.calls] == [["fast", "slow"], ["slow"], ["slow"]]
    assert sleeps == [2.0, 2.0]
    assert results[0].ok
    assert not results[1].ok
    assert isinstance(results[1].error, GraphThrottled)
    assert results[1].error.retry_after == 2.0


def test_item_retries_respect_the_total_wait_cap(mocked, make_client, sleeps):
    mocked.add_callback(responses.POST, BATCH, callback=answer(status=503, headers={"Retry-After": "90"}))

    results = make_client(max_total_wait=60).batch(get_requests(2))

    assert len(mocked.calls) == 1
    assert sleeps == []
    assert all(isinstance(r.error, GraphThrottled) for r in results)


def test_failed_dependency_is_reported_as_failed(mocked, client):
    mocked.post(
        BATCH,
        json={
            "responses": [
                {"id": "2", "status": 424},
                {
                    "id": "1",
                    "status": 400,
                    "headers": {},
                    "body": {"error": {"code": "ErrorInvalidRequest", "message": "Bad event"}},
                },
            ]
        },
    )

    results = client.batch(
        [
            BatchRequest("1", "POST", "/users/a@contoso.com/events", body={"subject": "x"}),
            BatchRequest("2", "PATCH", "/users/a@contoso.com/events/AAMk", body={"subject": "y"}),
        ]
    )

    assert not results[1].ok
    assert results[1].status == 424
    assert isinstance(results[1].error, GraphBadRequest)
    assert results[1].error.message == "Failed Dependency"
    assert len(mocked.calls) == 1


def test_item_404_carries_graph_not_found(mocked, client):
    mocked.post(
        BATCH,
        json={
            "responses": [
                {
                    "id": "gone",
                    "status": 404,
                    "headers": {"Content-Type": "application/json"},
                    "body": {
                        "error": {
                            "code": "ErrorItemNotFound",
                            "message": "The specified object was not found.",
                            "innerError": {
                                "request-id": "0d7a6c2e-1111-4a4a-9b9b-222233334444",
                                "date": "2025-06-02T10:00:00",
                            },
                        }
                    },
                }
            ]
        },
    )

    [result] = client.batch([BatchRequest("gone", "DELETE", "/users/a@contoso.com/events/AAMkGone")])

    assert not result.ok
    assert isinstance(result.error, GraphNotFound)
    assert result.error.code == "ErrorItemNotFound"
    assert result.error.request_id == "0d7a6c2e-1111-4a4a-9b9b-222233334444"
    assert result.error.url == f"{BASE}/users/a@contoso.com/events/AAMkGone"


@pytest.mark.parametrize("ids", [["1", "2", "1"], ["room", "ROOM"]])
def test_duplicate_ids_are_rejected_before_sending(mocked, client, ids):
    with pytest.raises(ValueError):
        client.batch([BatchRequest(i, "GET", "/me/calendar") for i in ids])

    assert len(mocked.calls) == 0


def test_absolute_item_urls_are_rejected_before_sending(mocked, client):
    requests_list = get_requests(25) + [BatchRequest("abs", "GET", f"{BASE}/me/calendar")]

    with pytest.raises(ValueError):
        client.batch(requests_list)

    assert len(mocked.calls) == 0


def test_whole_batch_429_is_retried(mocked, client, sleeps):
    mocked.post(
        BATCH,
        status=429,
        headers={"Retry-After": "3"},
        json={"error": {"code": "TooManyRequests", "message": "Please retry again later."}},
    )
    mocked.add_callback(responses.POST, BATCH, callback=answer())

    results = client.batch(get_requests(3))

    assert sleeps == [3.0]
    assert len(mocked.calls) == 2
    assert all(r.ok for r in results)


def test_whole_batch_failure_marks_each_item(mocked, client):
    mocked.post(BATCH, status=400, json={"error": {"code": "BadRequest", "message": "Invalid batch payload."}})

    results = client.batch(get_requests(2))

    assert [r.status for r in results] == [None, None]
    assert all(isinstance(r.error, GraphBadRequest) for r in results)
    assert len(mocked.calls) == 1


def test_item_without_an_answer_is_failed(mocked, client):
    mocked.post(BATCH, json={"responses": [{"id": "0", "status": 200, "headers": {}, "body": {}}]})

    results = client.batch(get_requests(2))

    assert results[0].ok
    assert not results[1].ok and results[1].status is None


def test_item_shape_follows_graph(mocked, client):
    mocked.add_callback(responses.POST, BATCH, callback=answer())

    client.batch(
        [
            BatchRequest(
                "1",
                "get",
                "users/a@contoso.com/calendarView?startDateTime=2025-06-02T00:00:00Z",
                headers={"Prefer": 'outlook.timezone="UTC"'},
            ),
            BatchRequest("2", "POST", "/users/a@contoso.com/events", body={"subject": "Sync"}),
        ]
    )

    outer = mocked.calls[0].request
    first, second = sent_items(mocked.calls[0])
    assert outer.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first == {
        "id": "1",
        "method": "GET",
        "url": "/users/a@contoso.com/calendarView?startDateTime=2025-06-02T00:00:00Z",
        "headers": {"Prefer": 'IdType="ImmutableId", outlook.timezone="UTC"'},
    }
    assert second["body"] == {"subject": "Sync"}
    assert second["headers"] == {"Prefer": 'IdType="ImmutableId"', "Content-Type": "application/json"}
