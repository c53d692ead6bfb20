"""Connect with Microsoft (delegated): the sign-in round trip, token renewal and disconnecting."""

import base64
import hashlib
import html
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from sqlalchemy import text

from app import clock
from app.database import encryption
from app.extensions import db
from app.graph import tokens
from app.graph.tokens import DelegatedTokenProvider, ReconnectRequired, TokenServiceUnavailable, graph_client_for
from app.models import AuditEntry, CalendarLink, Integration, OAuthToken, User
from app.models.job import Job
from app.oauth.flow import PENDING_KEY
from tests.admin_helpers import run_queued_jobs
from tests.conftest import PASSWORD, config_for

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "client-secret-value-Q7w!"
AUTHORIZE_URL = f"https://login.test/{TENANT}/oauth2/v2.0/authorize"
TOKEN_URL = f"https://login.test/{TENANT}/oauth2/v2.0/token"
GRAPH = "https://graph.test/v1.0"
CALLBACK = "/oauth/callback"
FIXTURES = Path(__file__).parent / "fixtures" / "identity"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def load(name):
    return json.loads((FIXTURES / name).read_text())


def form_of(request):
    return dict(parse_qsl(request.body))


@pytest.fixture
def frozen_clock(monkeypatch):
    moment = {"now": NOW}
    monkeypatch.setattr(clock, "utcnow", lambda: moment["now"])
    return moment


def add_integration(world, org="a", **overrides):
    organisation = getattr(world, org)
    values = dict(
        organisation_id=organisation.org,
        name=f"Outlook {org.upper()}",
        auth_mode="delegated",
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        object_id=organisation.object,
    )
    values.update(overrides)
    integration = Integration(**values)
    db.session.add(integration)
    db.session.commit()
    return integration.id


@pytest.fixture
def integration_id(app, world):
    with app.app_context():
        return add_integration(world)


def detail_path(world, integration_id, org="a"):
    return f"/orgs/{getattr(world, org).org}/integrations/{integration_id}"


def start_connect(client, world, integration_id):
    """POST the Connect button; return the authorize URL's query parameters."""
    response = client.post(detail_path(world, integration_id) + "/connect")
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(AUTHORIZE_URL + "?")
    return dict(parse_qsl(urlsplit(location).query))


def pending_sign_ins(client, **environ):
    with client.session_transaction(**environ) as flask_session:
        return dict(flask_session.get(PENDING_KEY) or {})


def refuse_code_as_already_redeemed(mocked):
    """The token endpoint's answer to a replayed authorization code."""
    register_code_exchange(
        mocked,
        body={
            "error": "invalid_grant",
            "error_description": "AADSTS54005: OAuth2 Authorization code was already redeemed.",
            "error_codes": [54005],
        },
        status=400,
    )


def register_code_exchange(mocked, body=None, status=200):
    mocked.add(responses.POST, TOKEN_URL, json=body or load("token-authorization-code.json"), status=status)


def second_client(app, email):
    other = app.test_client()
    response = other.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302
    return other


def store_connected_token(integration_id, expires_at, refresh_token="delegated-refresh-token-OLD-0000"):
    integration = db.session.get(Integration, integration_id)
    integration.token = OAuthToken(
        access_token="delegated-access-token-OLD-0000", refresh_token=refresh_token, expires_at=expires_at
    )
    integration.connection_state = "connected"
    integration.connected_account = "front.desk@alpha.example"
    db.session.commit()


# --- Starting the sign-in -----------------------------------------------------------------


def test_connect_redirects_to_the_authorize_endpoint_with_pkce_and_a_state(app, login, world, integration_id):
    # The requests arrive under an internal host name: the redirect URI must not use it.
    internal = "http://10.0.0.7:8000"
    client = app.test_client()
    client.post("/login", data={"email": world.a.admin, "password": PASSWORD}, base_url=internal)
    response = client.post(detail_path(world, integration_id) + "/connect", base_url=internal)
    params = dict(parse_qsl(urlsplit(response.headers["Location"]).query))

    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == "https://portal.test/oauth/callback"
    assert params["scope"] == "openid profile offline_access Calendars.ReadWrite User.Read"
    assert params["response_mode"] == "query"
    assert params["prompt"] == "select_account"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32

    pending = pending_sign_ins(client, base_url=internal)[params["state"]]
    with app.app_context():
        admin_id = db.session.scalar(db.select(User.id).where(User.email == world.a.admin))
    assert (pending["integration_id"], pending["user_id"]) == (integration_id, admin_id)
    digest = hashlib.sha256(pending["code_verifier"].encode()).digest()
    assert params["code_challenge"] == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert pending["code_verifier"] not in response.headers["Location"]


def test_connect_needs_a_client_secret_first(app, login, world):
    with app.app_context():
        integration_id = add_integration(world, client_secret=None)
    client = login(world.a.admin)
    page = client.get(detail_path(world, integration_id)).get_data(as_text=True)
    assert "Enter the client secret in the settings before connecting." in page
    assert "Connect with Microsoft</button>" not in page

    response = client.post(detail_path(world, integration_id) + "/connect", follow_redirects=True)
    assert response.status_code == 200
    assert "Enter the client secret in the settings before connecting." in response.get_data(as_text=True)
    assert pending_sign_ins(client) == {}


def test_application_integrations_have_no_sign_in(app, login, world):
    with app.app_context():
        integration_id = add_integration(world, auth_mode="application", object_id=None)
    client = login(world.a.admin)
    assert "Connect with Microsoft" not in client.get(detail_path(world, integration_id)).get_data(as_text=True)
    response = client.post(detail_path(world, integration_id) + "/connect")
    assert response.status_code == 400
    assert "application permissions" in response.get_data(as_text=True)


def test_the_connect_button_is_csrf_protected(app, world, integration_id, database_url, instance_dir):
    strict = config_for(database_url, WTF_CSRF_ENABLED=True)
    from app import create_app

    strict_app = create_app(strict, instance_path=instance_dir)
    client = strict_app.test_client()
    with strict_app.app_context():
        user_id = db.session.scalar(db.select(User.id).where(User.email == world.a.admin))
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(user_id)
        flask_session["_fresh"] = True
    page = client.get(detail_path(world, integration_id)).get_data(as_text=True)
    assert 'name="csrf_token"' in page
    response = client.post(detail_path(world, integration_id) + "/connect")
    assert response.status_code == 400
    assert pending_sign_ins(client) == {}
    with strict_app.app_context():
        db.engine.dispose()


# --- The callback -------------------------------------------------------------------------


def test_the_whole_round_trip_connects_the_integration(app, login, world, integration_id, mocked, frozen_clock):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    verifier = pending_sign_ins(client)[params["state"]]["code_verifier"]
    register_code_exchange(mocked)

    response = client.get(CALLBACK, query_string={"code": "authorization-code-1", "state": params["state"]})

    assert response.status_code == 302
    assert response.headers["Location"].endswith(detail_path(world, integration_id))
    exchange = form_of(mocked.calls[0].request)
    assert exchange == {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code": "authorization-code-1",
        "code_verifier": verifier,
        "redirect_uri": "https://portal.test/oauth/callback",
        "scope": "offline_access Calendars.ReadWrite User.Read",
    }

    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert integration.connection_state == "connected"
        assert integration.connection_error is None
        assert (integration.connected_account, integration.connected_name) == (
            "Front.Desk@alpha.example",
            "Alpha Front Desk",
        )
        assert integration.token.access_token == "delegated-access-token-ONE-4f9c"
        assert integration.token.refresh_token == "delegated-refresh-token-ONE-8d21"
        assert integration.token.expires_at == NOW + timedelta(seconds=3599)
        links = db.session.scalars(db.select(CalendarLink).where(CalendarLink.integration_id == integration_id)).all()
        assert [(link.mailbox, link.object_id) for link in links] == [("me", world.a.object)]
        # The calendar starts syncing: a subscription and a first sync are queued, not run here.
        queued = db.session.execute(db.select(Job.kind, Job.key).order_by(Job.kind)).all()
        assert queued == [("subscribe_link", str(links[0].id)), ("sync_link", str(links[0].id))]
        # The account comes from the ID token: the code exchange is the only call out.
        assert len(mocked.calls) == 1

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Connected to Microsoft as Front.Desk@alpha.example." in page
    assert "Alpha Front Desk &lt;Front.Desk@alpha.example&gt;" in page
    assert "Access token valid until 2026-03-02 10:59" in page  # Europe/Amsterdam
    assert "Own calendar of Front.Desk@alpha.example" in page
    assert pending_sign_ins(client) == {}


def test_reconnecting_keeps_one_own_calendar_link(app, login, world, integration_id, mocked):
    client = login(world.a.admin)
    for attempt in range(2):
        params = start_connect(client, world, integration_id)
        register_code_exchange(mocked)
        client.get(CALLBACK, query_string={"code": f"code-{attempt}", "state": params["state"]})
    with app.app_context():
        links = db.session.scalars(db.select(CalendarLink).where(CalendarLink.integration_id == integration_id)).all()
        assert [link.mailbox for link in links] == ["me"]
        assert db.session.scalar(db.select(db.func.count()).select_from(OAuthToken)) == 1


def test_a_state_is_good_for_one_answer_only(app, login, world, integration_id, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    register_code_exchange(mocked)
    client.get(CALLBACK, query_string={"code": "code-1", "state": params["state"]})
    replay = client.get(CALLBACK, query_string={"code": "code-1", "state": params["state"]}, follow_redirects=True)
    assert "does not belong to a sign-in started here" in replay.get_data(as_text=True)
    assert len(mocked.calls) == 1  # no second code exchange


@pytest.mark.parametrize("state", [None, "forged-state-value"])
def test_a_missing_or_mismatched_state_is_rejected(app, login, world, integration_id, mocked, state, caplog):
    with app.app_context():
        b_integration = add_integration(world, org="b")
    client = login(world.a.admin)
    start_connect(client, world, integration_id)
    # The integration id in the query is an attacker's choice and must be ignored.
    query = {"code": "stolen-code", "integration_id": b_integration}
    if state:
        query["state"] = state

    response = client.get(CALLBACK, query_string=query, follow_redirects=True)

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "does not belong to a sign-in started here, so it was ignored" in body
    assert len(mocked.calls) == 0
    assert "carried an unknown state" in caplog.text
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        # The abandoned sign-in is in the audit log; the integration itself is as it was.
        assert (integration.connection_state, integration.connection_error) == ("not_connected", None)
        assert integration.token is None
        assert "state mismatch" in db.session.scalar(
            db.select(AuditEntry.detail).where(AuditEntry.action == "sign_in_failed")
        )
        untouched = db.session.get(Integration, b_integration)
        assert (untouched.connection_state, untouched.connection_error) == ("not_connected", None)
    assert pending_sign_ins(client) == {}


def test_a_state_from_another_users_session_is_rejected(app, login, world, integration_id, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)

    intruder = second_client(app, world.support)
    response = intruder.get(CALLBACK, query_string={"code": "code-1", "state": params["state"]}, follow_redirects=True)

    assert "does not belong to a sign-in started here" in response.get_data(as_text=True)
    assert len(mocked.calls) == 0
    with app.app_context():
        assert db.session.get(Integration, integration_id).token is None
    # The admin's own sign-in is unaffected and can still finish.
    assert params["state"] in pending_sign_ins(client)


def test_a_state_left_by_the_previous_user_of_the_browser_is_rejected(app, login, world, integration_id, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    client.post("/logout")
    login(world.support)

    response = client.get(CALLBACK, query_string={"code": "code-1", "state": params["state"]}, follow_redirects=True)

    assert "does not belong to a sign-in started here" in response.get_data(as_text=True)
    assert len(mocked.calls) == 0
    assert pending_sign_ins(client) == {}
    with app.app_context():
        assert db.session.get(Integration, integration_id).token is None


def test_a_sign_in_left_open_too_long_is_refused(app, login, world, integration_id, mocked, frozen_clock):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    frozen_clock["now"] = NOW + timedelta(minutes=16)
    response = client.get(CALLBACK, query_string={"code": "late", "state": params["state"]}, follow_redirects=True)
    assert "The sign-in took longer than 15 minutes. Connect with Microsoft again." in response.get_data(as_text=True)
    assert len(mocked.calls) == 0
    with app.app_context():
        assert db.session.get(Integration, integration_id).connection_state == "not_connected"


def test_declined_consent_is_reported_and_changes_nothing(app, login, world, integration_id, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    response = client.get(
        CALLBACK,
        query_string={
            "error": "access_denied",
            "error_description": "AADSTS65004: User declined to consent to access the app.",
            "state": params["state"],
        },
        follow_redirects=True,
    )
    body = response.get_data(as_text=True)
    assert "The sign-in did not complete: Consent was declined (AADSTS65004). Connect with Microsoft again." in body
    assert len(mocked.calls) == 0
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.connection_error) == ("not_connected", None)
    page = client.get(detail_path(world, integration_id)).get_data(as_text=True)
    assert "needs reconnect" not in page and "Connect with Microsoft" in page


def test_a_refused_code_stores_nothing(app, login, world, integration_id, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    refuse_code_as_already_redeemed(mocked)
    response = client.get(CALLBACK, query_string={"code": "used", "state": params["state"]}, follow_redirects=True)
    assert "The authorization code was already used (AADSTS54005)" in response.get_data(as_text=True)
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert integration.connection_state == "not_connected"
        assert integration.token is None


def test_a_token_endpoint_outage_during_the_callback_changes_nothing(app, login, world, integration_id, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    mocked.add(responses.POST, TOKEN_URL, body="<html>Service Unavailable</html>", status=503)
    response = client.get(CALLBACK, query_string={"code": "c", "state": params["state"]}, follow_redirects=True)
    assert "answered 503. Nothing was changed" in response.get_data(as_text=True)
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.token) == ("not_connected", None)


def id_token(**claims):
    """An ID token as Microsoft issues it (the signature is not read), with the fixture's claims changed by `claims`."""
    header, payload, signature = load("token-authorization-code.json")["id_token"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    return f"{header}.{encoded}.{signature}"


@pytest.mark.parametrize(
    "token, reason",
    [
        (None, "Microsoft sent no readable ID token (the openid permission is missing)"),
        ("not-a-jwt", "Microsoft sent no readable ID token (the openid permission is missing)"),
        ("a.!!!.c", "Microsoft sent no readable ID token (the openid permission is missing)"),
        (id_token(preferred_username=None), "Microsoft's ID token names no account (preferred_username is missing)"),
        (id_token(aud="99999999-0000-0000-0000-000000000000"), "Microsoft's ID token was issued to another app"),
    ],
    ids=["missing", "not-a-jwt", "bad-base64", "no-account", "other-app"],
)
def test_an_answer_without_a_usable_id_token_stores_no_token(app, login, world, integration_id, mocked, token, reason):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    answer = dict(load("token-authorization-code.json"))
    answer.pop("id_token")
    if token is not None:
        answer["id_token"] = token
    register_code_exchange(mocked, body=answer)
    response = client.get(CALLBACK, query_string={"code": "c", "state": params["state"]}, follow_redirects=True)
    assert response.status_code == 200
    assert f"{reason}. Connect with Microsoft again." in html.unescape(response.get_data(as_text=True))
    assert len(mocked.calls) == 1  # the code exchange; no Graph call to make up for it
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.connection_error) == ("not_connected", None)
        assert integration.token is None
        assert db.session.scalar(db.select(db.func.count()).select_from(CalendarLink)) == 0


def test_the_account_name_comes_from_the_id_token_claims(app, login, world, integration_id, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    answer = dict(load("token-authorization-code.json"), id_token=id_token(preferred_username="Lobby@alpha.example"))
    register_code_exchange(mocked, body=answer)
    client.get(CALLBACK, query_string={"code": "c", "state": params["state"]})
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connected_account, integration.connected_name) == (
            "Lobby@alpha.example",
            "Alpha Front Desk",
        )


# --- Renewing the delegated token ---------------------------------------------------------


def test_a_fresh_token_is_served_without_asking_microsoft(app, world, integration_id, mocked, frozen_clock):
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=30))
        assert DelegatedTokenProvider(integration_id).get_token() == "delegated-access-token-OLD-0000"
    assert len(mocked.calls) == 0


def test_a_token_near_expiry_is_renewed_and_the_refresh_token_rotated(app, world, integration_id, mocked, frozen_clock):
    mocked.add(responses.POST, TOKEN_URL, json=load("token-refresh.json"))
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=4))
        assert DelegatedTokenProvider(integration_id).get_token() == "delegated-access-token-TWO-a7e0"

        assert form_of(mocked.calls[0].request) == {
            "grant_type": "refresh_token",
            "refresh_token": "delegated-refresh-token-OLD-0000",
            "scope": "offline_access Calendars.ReadWrite User.Read",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        db.session.expire_all()
        token = db.session.scalar(db.select(OAuthToken))
        assert token.refresh_token == "delegated-refresh-token-TWO-rotated-5b3c"
        assert token.expires_at == NOW + timedelta(seconds=3599)
        raw_access, raw_refresh = db.session.execute(text("SELECT access_token, refresh_token FROM oauth_tokens")).one()
        assert "delegated" not in raw_access + raw_refresh
        assert encryption.decrypt(raw_refresh) == "delegated-refresh-token-TWO-rotated-5b3c"


def test_concurrent_renewals_ask_microsoft_once(app, world, integration_id, mocked, frozen_clock):
    def slow_token_endpoint(request):
        time.sleep(0.3)  # keeps the window open for the other threads
        return 200, {}, json.dumps(load("token-refresh.json"))

    mocked.add_callback(responses.POST, TOKEN_URL, callback=slow_token_endpoint)
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=1))

    results, errors = [], []
    start = threading.Barrier(10)

    def worker():
        with app.app_context():
            start.wait()
            try:
                results.append(DelegatedTokenProvider(integration_id).get_token())
            except Exception as exc:  # surfaced below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert results == ["delegated-access-token-TWO-a7e0"] * 10
    assert len(mocked.calls) == 1


@pytest.mark.postgresql_only
def test_a_second_process_waits_for_the_first_ones_renewal(
    app, world, integration_id, mocked, frozen_clock, monkeypatch
):
    """Two processes share no in-process lock: on PostgreSQL the row lock makes the second one wait."""
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=1))
    monkeypatch.setattr(tokens, "_delegated_renewal_locks", lambda key: threading.Lock())

    def slow_token_endpoint(request):
        time.sleep(0.5)
        return 200, {}, json.dumps(load("token-refresh.json"))

    mocked.add_callback(responses.POST, TOKEN_URL, callback=slow_token_endpoint)
    results = []
    start = threading.Barrier(2)

    def process():
        with app.app_context():
            start.wait()
            results.append(DelegatedTokenProvider(integration_id).get_token())

    threads = [threading.Thread(target=process) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["delegated-access-token-TWO-a7e0"] * 2
    assert len(mocked.calls) == 1


def test_a_401_from_graph_renews_the_token_once(app, world, integration_id, mocked, frozen_clock):
    calendar = "https://graph.test/v1.0/me/calendar"
    mocked.add(responses.GET, calendar, status=401, json={"error": {"code": "InvalidAuthenticationToken"}})
    mocked.add(responses.POST, TOKEN_URL, json=load("token-refresh.json"))
    mocked.add(responses.GET, calendar, json={"id": "calendar-1"})
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=30))
        client = graph_client_for(db.session.get(Integration, integration_id))
        assert client.get("me/calendar") == {"id": "calendar-1"}
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer delegated-access-token-OLD-0000"
    assert mocked.calls[2].request.headers["Authorization"] == "Bearer delegated-access-token-TWO-a7e0"


@pytest.mark.parametrize(
    "error, code, reason",
    [
        ("invalid_grant", 700082, "The sign-in expired after a long time without use (AADSTS700082)"),
        ("invalid_grant", 70008, "The sign-in has expired (AADSTS70008)"),
        ("invalid_grant", 50173, "The sign-in was revoked, for example after a password reset (AADSTS50173)"),
        ("invalid_grant", 70043, "Conditional Access requires signing in again (AADSTS70043)"),
        ("invalid_grant", 65001, "The app has no consent for the requested permissions (AADSTS65001)"),
        ("interaction_required", 50076, "Multi-factor authentication is required (AADSTS50076)"),
        ("invalid_client", 7000222, "The client secret has expired (AADSTS7000222)"),
    ],
)
def test_a_refused_renewal_needs_reconnect(
    app, login, world, integration_id, mocked, frozen_clock, error, code, reason
):
    mocked.add(
        responses.POST,
        TOKEN_URL,
        status=401 if error == "invalid_client" else 400,
        json={"error": error, "error_description": f"AADSTS{code}: Something.", "error_codes": [code]},
    )
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=2))
        with pytest.raises(ReconnectRequired) as raised:
            DelegatedTokenProvider(integration_id).get_token()
        assert raised.value.reason == reason
        # Callers that come later stop without asking Microsoft again.
        with pytest.raises(ReconnectRequired):
            DelegatedTokenProvider(integration_id).get_token()
    assert len(mocked.calls) == 1
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.connection_error) == ("needs_reconnect", reason)
    page = html.unescape(login(world.a.admin).get(detail_path(world, integration_id)).get_data(as_text=True))
    assert f"AADSTS{code}" in page and WHAT_TO_DO_AFTER_REFUSAL[code] in page


# What the status page tells the admin to do, by the AADSTS code of the refused renewal.
WHAT_TO_DO_AFTER_REFUSAL = {
    700082: "sign in with Microsoft again",
    70008: "sign in with Microsoft again",
    50173: "sign in with Microsoft again",
    70043: "Sign in again interactively",
    65001: "grant admin consent",
    50076: "Sign in again interactively",
    7000222: "Create a new client secret",
}


def test_an_expired_refresh_token_is_reported_from_microsofts_answer(app, world, integration_id, mocked, frozen_clock):
    mocked.add(responses.POST, TOKEN_URL, status=400, json=load("error-invalid-grant-inactive.json"))
    with app.app_context():
        store_connected_token(integration_id, NOW - timedelta(minutes=1))
        with pytest.raises(ReconnectRequired, match="AADSTS700082"):
            DelegatedTokenProvider(integration_id).get_token()


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 503, "body": "<html>busy</html>"},
        {"status": 400, "json": {"error": "temporarily_unavailable", "error_description": "AADSTS50196: loop"}},
        {"body": responses.ConnectionError("connection reset")},
    ],
)
def test_a_transient_token_endpoint_failure_changes_nothing(app, world, integration_id, mocked, frozen_clock, answer):
    mocked.add(responses.POST, TOKEN_URL, **answer)
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=1))
        with pytest.raises(TokenServiceUnavailable):
            DelegatedTokenProvider(integration_id).get_token()
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.connection_error) == ("connected", None)
        assert integration.token.refresh_token == "delegated-refresh-token-OLD-0000"


# --- Disconnecting ------------------------------------------------------------------------


def test_disconnect_deletes_the_account_now_and_the_tokens_after_the_queued_deletions(
    app, login, world, integration_id, frozen_clock, mocked
):
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=30))
        link = CalendarLink(integration_id=integration_id, mailbox="me", object_id=world.a.object)
        link.subscription_id, link.subscription_client_state = "sub-me", "secret-state"
        db.session.add(link)
        db.session.commit()
    client = login(world.a.admin)
    response = client.post(detail_path(world, integration_id) + "/disconnect", follow_redirects=True)

    assert len(mocked.calls) == 0  # nothing is deleted at Graph inside the request
    body = response.get_data(as_text=True)
    assert "Disconnected from Microsoft. Deleting 1 subscription(s) at Microsoft is queued" in body
    assert "not connected" in body and 'id="disconnecting"' in body
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert integration.connection_state == "not_connected"
        assert (integration.connected_account, integration.connected_name) == (None, None)
        assert db.session.scalar(db.select(CalendarLink.subscription_id)) is None
        # Syncs stop at once: the stored token no longer serves them.
        with pytest.raises(ReconnectRequired):
            DelegatedTokenProvider(integration_id).get_token()

    # The job deletes the subscription at Graph with the stored token, then the token goes.
    mocked.post(f"{GRAPH}/$batch", json={"responses": [{"id": "0", "status": 204, "body": None}]})
    with app.app_context():
        assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(integration_id)): "done"}
    sent = json.loads(mocked.calls[0].request.body)["requests"]
    assert [(r["method"], r["url"]) for r in sent] == [("DELETE", "/subscriptions/sub-me")]
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer delegated-access-token-OLD-0000"
    with app.app_context():
        assert db.session.get(Integration, integration_id).token is None
        assert db.session.scalar(db.select(db.func.count()).select_from(OAuthToken)) == 0
    assert 'id="disconnecting"' not in client.get(detail_path(world, integration_id)).get_data(as_text=True)


def test_disconnect_without_subscriptions_deletes_the_tokens_at_once(app, login, world, integration_id, mocked):
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=30))
    response = login(world.a.admin).post(detail_path(world, integration_id) + "/disconnect", follow_redirects=True)
    assert "Disconnected from Microsoft: the stored tokens are deleted." in response.get_data(as_text=True)
    assert len(mocked.calls) == 0
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(OAuthToken)) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0


@pytest.fixture
def graph_never_waits(monkeypatch):
    """The disconnect job's Graph client retries throttled answers without sleeping between them."""
    from app.subscriptions import jobs as subscription_jobs

    real = subscription_jobs.graph_client_for
    monkeypatch.setattr(
        subscription_jobs,
        "graph_client_for",
        lambda integration, **options: real(integration, sleep=lambda seconds: None, **options),
    )


def test_the_disconnect_job_renews_an_expired_token_to_delete_and_keeps_it_for_a_retry(
    app, login, world, integration_id, frozen_clock, mocked, graph_never_waits
):
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=30))
        db.session.add(
            CalendarLink(
                integration_id=integration_id,
                mailbox="me",
                object_id=world.a.object,
                subscription_id="sub-me",
                subscription_client_state="s",
            )
        )
        db.session.commit()
    login(world.a.admin).post(detail_path(world, integration_id) + "/disconnect")
    frozen_clock["now"] = NOW + timedelta(hours=2)  # the stored access token has expired meanwhile

    mocked.add(responses.POST, TOKEN_URL, json=load("token-refresh.json"))
    mocked.post(
        f"{GRAPH}/$batch",
        json={"responses": [{"id": "0", "status": 503, "headers": {"Retry-After": "1"}, "body": None}]},
    )
    with app.app_context():
        assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(integration_id)): "queued"}
        token = db.session.get(Integration, integration_id).token
        # Kept for the retry, with the rotated refresh token.
        assert token.refresh_token == "delegated-refresh-token-TWO-rotated-5b3c"
    assert form_of(mocked.calls[0].request)["refresh_token"] == "delegated-refresh-token-OLD-0000"
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer delegated-access-token-TWO-a7e0"


def test_a_refused_token_ends_the_disconnect_job_and_drops_the_tokens(
    app, login, world, integration_id, frozen_clock, mocked
):
    with app.app_context():
        store_connected_token(integration_id, NOW - timedelta(minutes=1))
        db.session.add(
            CalendarLink(
                integration_id=integration_id,
                mailbox="me",
                object_id=world.a.object,
                subscription_id="sub-me",
                subscription_client_state="s",
            )
        )
        db.session.commit()
    login(world.a.admin).post(detail_path(world, integration_id) + "/disconnect")
    mocked.add(responses.POST, TOKEN_URL, status=400, json=load("error-invalid-grant-inactive.json"))
    with app.app_context():
        # Nothing can authorise the deletion any more: the subscription expires by itself.
        assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(integration_id)): "done"}
        integration = db.session.get(Integration, integration_id)
        assert (integration.token, integration.connection_state, integration.connection_error) == (
            None,
            "not_connected",
            None,
        )


def test_reconnecting_before_the_disconnect_job_ran_keeps_the_new_tokens(
    app, login, world, integration_id, frozen_clock, mocked
):
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=30))
        db.session.add(
            CalendarLink(
                integration_id=integration_id,
                mailbox="me",
                object_id=world.a.object,
                subscription_id="sub-old",
                subscription_client_state="s",
            )
        )
        db.session.commit()
    client = login(world.a.admin)
    client.post(detail_path(world, integration_id) + "/disconnect")
    params = start_connect(client, world, integration_id)
    register_code_exchange(mocked)
    client.get(CALLBACK, query_string={"code": "code-again", "state": params["state"]})

    mocked.post(f"{GRAPH}/$batch", json={"responses": [{"id": "0", "status": 204, "body": None}]})
    with app.app_context():
        run_queued_jobs("finish_disconnect")
        integration = db.session.get(Integration, integration_id)
        assert integration.connection_state == "connected"
        assert integration.token.refresh_token == "delegated-refresh-token-ONE-8d21"
    # The old subscription is deleted with the new sign-in's token.
    assert json.loads(mocked.calls[1].request.body)["requests"][0]["url"] == "/subscriptions/sub-old"
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer delegated-access-token-ONE-4f9c"


def test_a_parked_disconnect_job_is_shown_and_disconnecting_again_retries_it(
    app, login, world, integration_id, frozen_clock, mocked, graph_never_waits
):
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=30))
        db.session.add(
            CalendarLink(
                integration_id=integration_id,
                mailbox="me",
                object_id=world.a.object,
                subscription_id="sub-me",
                subscription_client_state="s",
            )
        )
        db.session.commit()
    client = login(world.a.admin)
    client.post(detail_path(world, integration_id) + "/disconnect")
    app.config["JOB_MAX_ATTEMPTS"] = 1
    mocked.post(f"{GRAPH}/$batch", json={"responses": [{"id": "0", "status": 503, "body": None}]})
    with app.app_context():
        assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(integration_id)): "failed"}
    page = client.get(detail_path(world, integration_id)).get_data(as_text=True)
    assert "Deleting 1 subscription(s) at Microsoft failed." in page and "Disconnect again to retry" in page
    assert "Microsoft was temporarily unavailable" in page
    assert "GraphThrottled: Graph 503" in page.split("Details for support")[1]
    with app.app_context():
        assert db.session.get(Integration, integration_id).token is not None  # still able to authorise it

    again = client.post(detail_path(world, integration_id) + "/disconnect", follow_redirects=True)
    assert "Deleting 1 subscription(s) at Microsoft is queued" in again.get_data(as_text=True)
    mocked.replace(responses.POST, f"{GRAPH}/$batch", json={"responses": [{"id": "0", "status": 204, "body": None}]})
    with app.app_context():
        assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(integration_id)): "done"}
        assert db.session.get(Integration, integration_id).token is None
        assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0  # the parked one went too
    assert json.loads(mocked.calls[-1].request.body)["requests"][0]["url"] == "/subscriptions/sub-me"
