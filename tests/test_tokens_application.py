"""The app-only (client-credentials) token: one per integration and secret, shared by threads."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import responses

from app import clock
from app.extensions import db
from app.graph import tokens
from app.graph.tokens import ApplicationTokenProvider, ReconnectRequired, TokenServiceUnavailable, graph_client_for
from app.models import Integration

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "app-client-secret-K9x%"
TOKEN_URL = f"https://login.test/{TENANT}/oauth2/v2.0/token"
FIXTURES = Path(__file__).parent / "fixtures" / "identity"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
APP_TOKEN = "app-only-access-token-ONE-c41d"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def numbered_tokens():
    """A token endpoint callback handing out app-token-1, app-token-2, ..."""
    issued = []

    def answer(request):
        issued.append(request)
        body = dict(load("token-client-credentials.json"), access_token=f"app-token-{len(issued)}")
        return 200, {}, json.dumps(body)

    return answer


@pytest.fixture
def frozen_clock(monkeypatch):
    moment = {"now": NOW}
    monkeypatch.setattr(clock, "utcnow", lambda: moment["now"])
    return moment


@pytest.fixture
def integration_id(app, world):
    with app.app_context():
        integration = Integration(
            organisation_id=world.a.org,
            name="Rooms",
            auth_mode="application",
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            connection_state="connected",
        )
        db.session.add(integration)
        db.session.commit()
        return integration.id


def get_token(app, integration_id):
    with app.app_context():
        return ApplicationTokenProvider(integration_id).get_token()


def state_of(app, integration_id):
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        return integration.connection_state, integration.connection_error


def test_the_client_credentials_request(app, integration_id, mocked):
    mocked.add(responses.POST, TOKEN_URL, json=load("token-client-credentials.json"))
    assert get_token(app, integration_id) == APP_TOKEN
    assert dict(parse_qsl(mocked.calls[0].request.body)) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "https://graph.microsoft.com/.default",
    }


def test_fifty_threads_on_a_cold_cache_make_one_token_request(app, integration_id, mocked):
    def slow_token_endpoint(request):
        time.sleep(0.3)  # every other thread arrives while this one waits for Microsoft
        return 200, {}, json.dumps(load("token-client-credentials.json"))

    mocked.add_callback(responses.POST, TOKEN_URL, callback=slow_token_endpoint)
    results, errors = [], []
    start = threading.Barrier(50)

    def worker():
        with app.app_context():
            provider = ApplicationTokenProvider(integration_id)
            start.wait()
            try:
                results.append(provider.get_token())
            except Exception as exc:  # surfaced below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert results == [APP_TOKEN] * 50
    assert len(mocked.calls) == 1


def test_the_token_is_fetched_again_five_minutes_before_it_expires(app, integration_id, mocked, frozen_clock):
    mocked.add_callback(responses.POST, TOKEN_URL, callback=numbered_tokens())
    assert get_token(app, integration_id) == "app-token-1"
    frozen_clock["now"] = NOW + timedelta(minutes=54)
    assert get_token(app, integration_id) == "app-token-1"
    assert len(mocked.calls) == 1
    frozen_clock["now"] = NOW + timedelta(minutes=55)  # 3599 s lifetime: under five minutes left
    assert get_token(app, integration_id) == "app-token-2"
    assert len(mocked.calls) == 2


def test_a_new_client_secret_invalidates_the_cached_token(app, integration_id, mocked):
    mocked.add_callback(responses.POST, TOKEN_URL, callback=numbered_tokens())
    assert get_token(app, integration_id) == "app-token-1"
    with app.app_context():
        db.session.get(Integration, integration_id).client_secret = "a-brand-new-secret"
        db.session.commit()
    assert get_token(app, integration_id) == "app-token-2"
    assert dict(parse_qsl(mocked.calls[1].request.body))["client_secret"] == "a-brand-new-secret"


def test_a_client_for_a_loaded_integration_reads_no_settings_again(app, integration_id, mocked, monkeypatch):
    # A job thread holds its own connection while it syncs; a second one per job would
    # drain a pool sized for one connection per thread.
    mocked.add(responses.POST, TOKEN_URL, json=load("token-client-credentials.json"))

    def no_second_session():
        raise AssertionError("the settings were read again")

    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        monkeypatch.setattr(tokens, "_token_session", no_second_session)
        assert tokens.token_provider_for(integration).get_token() == APP_TOKEN


def test_the_graph_pool_holds_a_connection_per_job_thread(app, integration_id):
    with app.app_context():
        app.config["JOB_WORKERS"] = 24
        client = graph_client_for(db.session.get(Integration, integration_id))
    assert client._session.get_adapter("https://graph.test/")._pool_maxsize >= 24


def test_refresh_token_replaces_the_cached_token(app, integration_id, mocked):
    mocked.add_callback(responses.POST, TOKEN_URL, callback=numbered_tokens())
    with app.app_context():
        provider = ApplicationTokenProvider(integration_id)
        assert provider.get_token() == "app-token-1"
        assert provider.refresh_token() == "app-token-2"
        assert ApplicationTokenProvider(integration_id).get_token() == "app-token-2"
    assert len(mocked.calls) == 2


def test_a_401_from_graph_fetches_a_new_token_once(app, integration_id, mocked):
    calendar = "https://graph.test/v1.0/users/room-1@alpha.example/calendar"
    mocked.add_callback(responses.POST, TOKEN_URL, callback=numbered_tokens())
    mocked.add(responses.GET, calendar, status=401, json={"error": {"code": "InvalidAuthenticationToken"}})
    mocked.add(responses.GET, calendar, json={"id": "calendar-1"})
    with app.app_context():
        client = graph_client_for(db.session.get(Integration, integration_id))
        assert client.get("users/room-1@alpha.example/calendar") == {"id": "calendar-1"}
    assert [call.request.headers.get("Authorization") for call in mocked.calls if "graph.test" in call.request.url] == [
        "Bearer app-token-1",
        "Bearer app-token-2",
    ]


@pytest.mark.parametrize(
    "body, reason",
    [
        (load("error-invalid-client-secret.json"), "The client secret is wrong (AADSTS7000215)"),
        (
            {
                "error": "unauthorized_client",
                "error_description": "AADSTS700016: Application not found.",
                "error_codes": [700016],
            },
            "The app (client id) is not registered in this tenant (AADSTS700016)",
        ),
        (
            {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found.", "error_codes": [90002]},
            "The tenant was not found (AADSTS90002)",
        ),
    ],
)
def test_a_refusal_needs_reconnect_and_is_not_repeated_at_once(app, integration_id, mocked, body, reason):
    mocked.add(responses.POST, TOKEN_URL, status=401, json=body)
    for _ in range(3):
        with pytest.raises(ReconnectRequired) as raised:
            get_token(app, integration_id)
        assert raised.value.reason == reason
    assert len(mocked.calls) == 1
    assert state_of(app, integration_id) == ("needs_reconnect", reason)


def test_a_missing_client_secret_needs_reconnect(app, integration_id, mocked):
    with app.app_context():
        db.session.get(Integration, integration_id).client_secret = None
        db.session.commit()
    with pytest.raises(ReconnectRequired, match="No client secret is set"):
        get_token(app, integration_id)
    assert state_of(app, integration_id)[0] == "needs_reconnect"


def test_a_token_endpoint_outage_changes_nothing(app, integration_id, mocked):
    mocked.add(responses.POST, TOKEN_URL, status=500, body="Internal Server Error")
    mocked.add(responses.POST, TOKEN_URL, json=load("token-client-credentials.json"))
    with pytest.raises(TokenServiceUnavailable, match="answered 500"):
        get_token(app, integration_id)
    assert state_of(app, integration_id) == ("connected", None)
    # Nothing bad is remembered: the next caller asks again.
    assert get_token(app, integration_id) == APP_TOKEN


def test_disconnect_drops_the_cached_token(app, login, world, integration_id, mocked):
    mocked.add_callback(responses.POST, TOKEN_URL, callback=numbered_tokens())
    assert get_token(app, integration_id) == "app-token-1"
    response = login(world.a.admin).post(f"/orgs/{world.a.org}/integrations/{integration_id}/disconnect")
    assert response.status_code == 302
    assert state_of(app, integration_id) == ("not_connected", None)
    assert get_token(app, integration_id) == "app-token-2"
