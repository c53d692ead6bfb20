"""GraphClient: URLs, headers, retries, token refresh, typed errors, paging."""

import json
import logging
import pickle
import random
from pathlib import Path

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter

from app.graph.client import GraphClient, build_session, merge_preferences, shared_session
from app.graph.errors import (
    GraphAuthError,
    GraphBadRequest,
    GraphError,
    GraphForbidden,
    GraphNotFound,
    GraphServerError,
    GraphSyncStateExpired,
    GraphThrottled,
    GraphTransportError,
    error_from_parts,
    parse_retry_after,
)

BASE = "https://graph.microsoft.com/v1.0"
EVENTS = f"{BASE}/users/room1@contoso.com/events"
DELTA = f"{BASE}/users/room1@contoso.com/calendarView/delta"
TOKEN = "eyJ0eXAiOiJKV1QiLCJub25jZSI6.first-access-token.c2lnbmF0dXJl"
FRESH_TOKEN = "eyJ0eXAiOiJKV1QiLCJub25jZSI6.second-access-token.c2lnbmF0dXJl"
FIXTURES = Path(__file__).parent / "fixtures" / "graph"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def graph_error(code, message, request_id="7f3c2a10-0000-4000-8000-000000000001"):
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"request-id": request_id, "date": "2025-06-02T10:00:00"},
        }
    }


class FakeTokens:
    """Token provider that counts calls and hands out a new token on refresh."""

    def __init__(self):
        self.token = TOKEN
        self.get_calls = 0
        self.refresh_calls = 0

    def get_token(self):
        self.get_calls += 1
        return self.token

    def refresh_token(self):
        self.refresh_calls += 1
        self.token = FRESH_TOKEN
        return self.token


class TopOfRange:
    """Jitter source that always picks the upper bound, so waits are exact."""

    def __init__(self):
        self.ranges = []

    def uniform(self, low, high):
        self.ranges.append((low, high))
        return high


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def tokens():
    return FakeTokens()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(tokens, sleeps):
    def make(**kwargs):
        kwargs.setdefault("sleep", sleeps.append)
        kwargs.setdefault("rng", TopOfRange())
        return GraphClient(kwargs.pop("base_url", BASE), tokens, **kwargs)

    return make


@pytest.fixture
def client(make_client):
    return make_client()


# URLs and headers


@pytest.mark.parametrize("base_url", [BASE, BASE + "/"])
@pytest.mark.parametrize("path", ["users/room1@contoso.com/events", "/users/room1@contoso.com/events"])
def test_relative_paths_are_joined_to_the_version_root(mocked, make_client, base_url, path):
    mocked.get(EVENTS, json={"value": []})

    make_client(base_url=base_url).get(path)

    assert mocked.calls[0].request.url == EVENTS


def test_absolute_next_link_is_used_verbatim(mocked, client):
    link = f"{DELTA}?$skiptoken=R0usmcCM996atia_s%3D%3D"
    mocked.get(link, json={"value": []})

    client.get(link)

    assert mocked.calls[0].request.url == link


def test_absolute_url_on_another_host_is_refused(mocked, client):
    with pytest.raises(ValueError):
        client.get("https://attacker.example.com/v1.0/me/events?$skiptoken=x")

    assert len(mocked.calls) == 0


def test_sends_bearer_token_and_immutable_id_preference(mocked, client):
    mocked.get(EVENTS, json={"value": []})

    client.get(EVENTS)

    headers = mocked.calls[0].request.headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Prefer"] == 'IdType="ImmutableId"'


def test_caller_prefer_is_combined_with_immutable_id(mocked, make_client):
    mocked.get(EVENTS, json={"value": []})
    client = make_client(default_headers={"Prefer": "odata.maxpagesize=100"})

    client.get(EVENTS, headers={"prefer": 'outlook.timezone="UTC"'})

    assert mocked.calls[0].request.headers["Prefer"] == (
        'IdType="ImmutableId", odata.maxpagesize=100, outlook.timezone="UTC"'
    )


def test_caller_may_replace_the_id_type_preference(mocked, client):
    mocked.get(EVENTS, json={"value": []})

    client.get(EVENTS, headers={"Prefer": 'IdType="RestId"'})

    assert mocked.calls[0].request.headers["Prefer"] == 'IdType="RestId"'


def test_merge_preferences_keeps_quoted_commas():
    merged = merge_preferences('IdType="ImmutableId"', 'outlook.timezone="A, B"')

    assert merged == 'IdType="ImmutableId", outlook.timezone="A, B"'


def test_every_send_carries_the_timeout(mocked, make_client):
    mocked.get(EVENTS, status=429, headers={"Retry-After": "1"})
    mocked.get(EVENTS, json={"value": []})

    make_client(timeout=(3, 7)).get(EVENTS)

    assert [c.request.req_kwargs["timeout"] for c in mocked.calls] == [(3, 7), (3, 7)]


def test_default_timeout_is_applied(mocked, client):
    mocked.get(EVENTS, json={"value": []})

    client.get(EVENTS)

    assert mocked.calls[0].request.req_kwargs["timeout"] == (5, 30)


def test_shared_session_is_reused_and_sized():
    first = shared_session(pool_maxsize=16)

    assert shared_session() is first
    assert first.get_adapter(BASE)._pool_maxsize == 16


def test_a_larger_pool_asked_for_later_gets_a_new_shared_session():
    first = shared_session(pool_maxsize=10)

    larger = shared_session(pool_maxsize=24)

    assert larger is not first
    assert larger.get_adapter(BASE)._pool_maxsize == 24
    assert shared_session(pool_maxsize=12) is larger


def test_build_session_sizes_its_pool():
    assert build_session(pool_maxsize=8).get_adapter(BASE)._pool_maxsize == 8


# Throttling and retries


def test_retry_after_is_honoured_exactly(mocked, client, sleeps):
    mocked.get(EVENTS, status=429, json=fixture("error-429-too-many-requests.json"), headers={"Retry-After": "2"})
    mocked.get(EVENTS, json={"value": [{"id": "a"}]})

    assert client.get(EVENTS) == {"value": [{"id": "a"}]}
    assert sleeps == [2.0]
    assert len(mocked.calls) == 2


def test_fractional_retry_after(mocked, client, sleeps):
    mocked.get(EVENTS, status=429, headers={"Retry-After": "0.5"})
    mocked.get(EVENTS, json={})

    client.get(EVENTS)

    assert sleeps == [0.5]


def test_backoff_doubles_up_to_the_cap_without_retry_after(mocked, make_client, sleeps):
    for _ in range(4):
        mocked.get(EVENTS, status=429)
    mocked.get(EVENTS, json={})
    jitter = TopOfRange()

    make_client(backoff_base=1.0, backoff_cap=3.0, rng=jitter).get(EVENTS)

    assert jitter.ranges == [(0, 1.0), (0, 2.0), (0, 3.0), (0, 3.0)]
    assert sleeps == [1.0, 2.0, 3.0, 3.0]


def test_backoff_with_real_jitter_stays_within_bounds(mocked, make_client, sleeps):
    for _ in range(4):
        mocked.get(EVENTS, status=429)
    mocked.get(EVENTS, json={})

    make_client(backoff_base=0.5, backoff_cap=30.0, rng=random.Random(42)).get(EVENTS)

    assert len(sleeps) == 4
    for attempt, wait in enumerate(sleeps):
        assert 0 <= wait <= 0.5 * 2**attempt


@pytest.mark.parametrize("value", ["Wed, 21 Oct 2015 07:28:00 GMT", "soon", "-3", "nan"])
def test_unusable_retry_after_falls_back_to_backoff(mocked, client, sleeps, value):
    mocked.get(EVENTS, status=429, headers={"Retry-After": value})
    mocked.get(EVENTS, json={})

    client.get(EVENTS)

    assert sleeps == [1.0]


def test_parse_retry_after():
    assert parse_retry_after("10") == 10.0
    assert parse_retry_after("2.128") == 2.128
    assert parse_retry_after(None) is None
    assert parse_retry_after("inf") is None


def test_503_is_retried_on_a_new_connection(mocked, tokens, sleeps):
    class CountingAdapter(HTTPAdapter):
        closed = 0

        def close(self):
            CountingAdapter.closed += 1
            super().close()

    session = requests.Session()
    session.mount("https://", CountingAdapter())
    mocked.get(EVENTS, status=503, headers={"Retry-After": "1"})
    mocked.get(EVENTS, json={"value": []})
    client = GraphClient(BASE, tokens, session=session, sleep=sleeps.append)

    client.get(EVENTS)

    assert len(mocked.calls) == 2
    assert sleeps == [1.0]
    assert CountingAdapter.closed == 1


def test_504_is_retried(mocked, client, sleeps):
    mocked.get(EVENTS, status=504)
    mocked.get(EVENTS, json={"value": []})

    assert client.get(EVENTS) == {"value": []}
    assert sleeps == [1.0]


def test_attempt_cap_raises_throttled(mocked, make_client, sleeps):
    mocked.get(EVENTS, status=429, json=fixture("error-429-too-many-requests.json"), headers={"Retry-After": "1"})

    with pytest.raises(GraphThrottled) as info:
        make_client(max_attempts=3).get(EVENTS)

    assert len(mocked.calls) == 3
    assert sleeps == [1.0, 1.0]
    assert info.value.status == 429
    assert info.value.retry_after == 1.0
    assert info.value.code == "TooManyRequests"
    assert info.value.is_transient


def test_total_wait_cap_gives_up_without_sleeping_past_it(mocked, make_client, sleeps):
    mocked.get(EVENTS, status=429, headers={"Retry-After": "100"})

    with pytest.raises(GraphThrottled) as info:
        make_client(max_total_wait=60).get(EVENTS)

    assert sleeps == []
    assert len(mocked.calls) == 1
    assert info.value.retry_after == 100.0


def test_total_wait_cap_counts_all_waits(mocked, make_client, sleeps):
    mocked.get(EVENTS, status=429, headers={"Retry-After": "25"})

    with pytest.raises(GraphThrottled):
        make_client(max_attempts=10, max_total_wait=60).get(EVENTS)

    assert sleeps == [25.0, 25.0]
    assert len(mocked.calls) == 3


def test_connection_errors_are_retried(mocked, client, sleeps):
    mocked.get(EVENTS, body=requests.ConnectionError("connection reset"))
    mocked.get(EVENTS, body=requests.ConnectTimeout("connect timed out"))
    mocked.get(EVENTS, json={"value": []})

    assert client.get(EVENTS) == {"value": []}
    assert sleeps == [1.0, 2.0]


def test_persistent_timeouts_raise_transport_error(mocked, make_client, sleeps):
    mocked.get(EVENTS, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(GraphTransportError) as info:
        make_client(max_attempts=3).get(f"{EVENTS}?$top=5")

    assert len(mocked.calls) == 3
    assert len(sleeps) == 2
    assert info.value.status is None
    assert info.value.is_transient
    assert info.value.url == EVENTS


def test_other_errors_are_not_retried(mocked, client, sleeps):
    mocked.get(EVENTS, status=500, json=graph_error("generalException", "Boom"))

    with pytest.raises(GraphServerError):
        client.get(EVENTS)

    assert len(mocked.calls) == 1
    assert sleeps == []


# Token refresh


def test_401_refreshes_the_token_once_and_retries(mocked, client, tokens):
    mocked.get(EVENTS, status=401, json=graph_error("InvalidAuthenticationToken", "Expired"))
    mocked.get(EVENTS, json={"value": []})

    assert client.get(EVENTS) == {"value": []}
    assert tokens.refresh_calls == 1
    assert mocked.calls[1].request.headers["Authorization"] == f"Bearer {FRESH_TOKEN}"


def test_second_401_raises_auth_error(mocked, client, tokens):
    mocked.get(EVENTS, status=401, json=graph_error("InvalidAuthenticationToken", "Expired"))

    with pytest.raises(GraphAuthError) as info:
        client.get(EVENTS)

    assert tokens.refresh_calls == 1
    assert len(mocked.calls) == 2
    assert info.value.status == 401
    assert not info.value.is_transient


# Typed errors


def test_404_item_not_found(mocked, client):
    mocked.get(
        f"{EVENTS}/AAMkAD1",
        status=404,
        json=graph_error(
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
            request_id="5c1b9e0e-8f67-4d7a-a1e2-3c9b1c0d2e11",
        ),
    )

    with pytest.raises(GraphNotFound) as info:
        client.get("users/room1@contoso.com/events/AAMkAD1")

    error = info.value
    assert error.status == 404
    assert error.code == "ErrorItemNotFound"
    assert error.request_id == "5c1b9e0e-8f67-4d7a-a1e2-3c9b1c0d2e11"
    assert error.method == "GET"
    assert str(error) == (
        "Graph 404 ErrorItemNotFound: The specified object was not found in the store. "
        f"(GET {EVENTS}/AAMkAD1; request-id 5c1b9e0e-8f67-4d7a-a1e2-3c9b1c0d2e11)"
    )


def test_403_application_access_policy(mocked, client):
    mocked.get(EVENTS, status=403, json=fixture("error-403-application-access-policy.json"))

    with pytest.raises(GraphForbidden) as info:
        client.get(EVENTS)

    assert info.value.code == "ErrorAccessDenied"
    assert info.value.message == "Access to OData is disabled."
    assert info.value.request_id == "2f038156-cf40-403d-8e46-831fe42a8229"


def test_observed_410_sync_state_not_found(mocked, client):
    link = f"{DELTA}?$deltatoken=R0usmcMDNGg0J1E"
    mocked.get(link, status=410, json=fixture("error-410-syncstatenotfound.json"))

    with pytest.raises(GraphSyncStateExpired) as info:
        client.get(link)

    assert info.value.code == "SyncStateNotFound"
    assert info.value.request_id == "1137f277-eab4-4b9b-bb13-2ceb880bffcb"
    assert info.value.url == DELTA
    assert "deltatoken" not in str(info.value)


@pytest.mark.parametrize("code", ["syncStateNotFound", "resyncRequired", "RESYNCREQUIRED"])
def test_400_with_resync_codes_means_sync_state_expired(mocked, client, code):
    mocked.get(DELTA, status=400, json=graph_error(code, "Resync required."))

    with pytest.raises(GraphSyncStateExpired):
        client.get(DELTA)


def test_410_without_body_means_sync_state_expired(mocked, client):
    mocked.get(DELTA, status=410, headers={"Location": f"{DELTA}?$deltatoken="})

    with pytest.raises(GraphSyncStateExpired):
        client.get(DELTA)


def test_non_json_error_body_is_handled(mocked, client):
    mocked.get(
        EVENTS,
        status=502,
        body="<html><body>Bad Gateway</body></html>",
        content_type="text/html",
        headers={"request-id": "hdr-123"},
    )

    with pytest.raises(GraphServerError) as info:
        client.get(EVENTS)

    assert info.value.status == 502
    assert info.value.code is None
    assert "Bad Gateway" in info.value.message
    assert info.value.request_id == "hdr-123"


def test_other_4xx_is_bad_request_and_not_transient(mocked, client):
    mocked.post(EVENTS, status=400, json=graph_error("ErrorOccurrenceCrossingBoundary", "Overlap"))

    with pytest.raises(GraphBadRequest) as info:
        client.post(EVENTS, json={"subject": "x"})

    assert info.value.code == "ErrorOccurrenceCrossingBoundary"
    assert not info.value.is_transient


def test_error_code_decides_for_unusual_statuses():
    error = error_from_parts(400, {}, graph_error("ErrorItemNotFound", "gone"), "GET", EVENTS)

    assert isinstance(error, GraphNotFound)


def test_long_messages_are_truncated_to_one_line():
    message = "line one\nline two " + "x" * 1000
    error = error_from_parts(400, {}, graph_error("BadRequest", message), "GET", EVENTS)

    assert "\n" in message and "\n" not in str(error)
    assert len(error.message) <= 300


def test_errors_survive_pickling():
    error = error_from_parts(429, {"Retry-After": "3"}, fixture("error-429-too-many-requests.json"), "GET", EVENTS)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is GraphThrottled
    assert (copy.status, copy.code, copy.retry_after, copy.url) == (429, "TooManyRequests", 3.0, EVENTS)
    assert str(copy) == str(error)


# Convenience methods


def test_post_patch_delete(mocked, client):
    mocked.post(EVENTS, status=201, json={"id": "AAMkNew"})
    mocked.patch(f"{EVENTS}/AAMkNew", json={"id": "AAMkNew", "subject": "Moved"})
    mocked.delete(f"{EVENTS}/AAMkNew", status=204)
    mocked.post(f"{EVENTS}/AAMkOld/cancel", status=202)

    assert client.post(EVENTS, json={"subject": "Sync"}) == {"id": "AAMkNew"}
    assert client.patch(f"{EVENTS}/AAMkNew", json={"subject": "Moved"})["subject"] == "Moved"
    assert client.delete(f"{EVENTS}/AAMkNew") is None
    assert client.post(f"{EVENTS}/AAMkOld/cancel", json={"comment": "Room released"}) is None
    assert json.loads(mocked.calls[0].request.body) == {"subject": "Sync"}


# Paging


def register_delta_round(mocked):
    first = fixture("delta-01-page-with-nextlink.json")
    first["@odata.nextLink"] = f"{DELTA}?$skiptoken=page2"
    second = {"value": [{"id": "AAMk2"}], "@odata.nextLink": f"{DELTA}?$skiptoken=page3"}
    third = fixture("delta-02-final-page-with-deltalink.json")
    start = f"{DELTA}?startDateTime=2025-06-01T00%3A00%3A00Z&endDateTime=2025-07-01T00%3A00%3A00Z"
    mocked.get(start, json=first)
    mocked.get(f"{DELTA}?$skiptoken=page2", json=second)
    mocked.get(f"{DELTA}?$skiptoken=page3", json=third)
    return first, second, third


def test_iter_pages_fetches_lazily_and_yields_the_final_page(mocked, client):
    first, second, third = register_delta_round(mocked)
    window = {"startDateTime": "2025-06-01T00:00:00Z", "endDateTime": "2025-07-01T00:00:00Z"}

    pages = client.iter_pages("users/room1@contoso.com/calendarView/delta", params=window)
    assert len(mocked.calls) == 0
    assert next(pages) == first
    assert len(mocked.calls) == 1
    assert next(pages) == second
    assert len(mocked.calls) == 2
    rest = list(pages)

    assert rest == [third]
    assert rest[-1]["@odata.deltaLink"].startswith(f"{BASE}/me/calendarView/delta?$deltatoken=")
    assert mocked.calls[1].request.url == f"{DELTA}?$skiptoken=page2"
    assert mocked.calls[2].request.url == f"{DELTA}?$skiptoken=page3"


def test_iter_pages_resends_headers_on_every_page(mocked, client):
    register_delta_round(mocked)
    window = {"startDateTime": "2025-06-01T00:00:00Z", "endDateTime": "2025-07-01T00:00:00Z"}

    list(client.iter_pages(DELTA, params=window, headers={"Prefer": "odata.maxpagesize=2"}))

    for call in mocked.calls:
        assert call.request.headers["Prefer"] == 'IdType="ImmutableId", odata.maxpagesize=2'


def test_iter_items_spans_pages(mocked, client):
    first, second, third = register_delta_round(mocked)
    window = {"startDateTime": "2025-06-01T00:00:00Z", "endDateTime": "2025-07-01T00:00:00Z"}

    items = list(client.iter_items(DELTA, params=window))

    assert items == first["value"] + second["value"] + third["value"]


def test_401_mid_round_refreshes_and_retries_the_same_link(mocked, client, tokens):
    link = f"{DELTA}?$skiptoken=page2"
    mocked.get(link, status=401)
    mocked.get(link, json={"value": [], "@odata.deltaLink": f"{DELTA}?$deltatoken=done"})

    pages = list(client.iter_pages(link))

    assert pages[-1]["@odata.deltaLink"] == f"{DELTA}?$deltatoken=done"
    assert [c.request.url for c in mocked.calls] == [link, link]
    assert tokens.refresh_calls == 1


# Secrets


def test_token_never_reaches_logs_or_errors(mocked, client, caplog):
    caplog.set_level(logging.DEBUG)
    mocked.get(EVENTS, status=429, headers={"Retry-After": "1"})
    mocked.get(EVENTS, status=401)
    mocked.get(EVENTS, body=requests.ConnectionError("reset"))
    mocked.get(EVENTS, status=404, json=graph_error("ErrorItemNotFound", "Not found"))
    mocked.get(DELTA, body=requests.ReadTimeout("timed out"))

    with pytest.raises(GraphNotFound) as not_found:
        client.get(EVENTS)
    with pytest.raises(GraphTransportError) as transport:
        client.get(DELTA)

    assert "retrying" in caplog.text
    for secret in (TOKEN, FRESH_TOKEN, "Bearer"):
        assert secret not in caplog.text
        for error in (not_found.value, transport.value):
            assert secret not in str(error)
            assert secret not in repr(error)
            assert secret not in repr(vars(error))


def test_graph_error_str_without_context():
    assert str(GraphError("Something failed")) == "Graph: Something failed"
