"""The client secret, tokens and authorization codes never reach a log line, a page or a plain column."""

import logging
from datetime import timedelta

import pytest
import responses
from sqlalchemy import text

from app import clock
from app.extensions import db
from app.graph import tokens
from app.graph.tokens import ApplicationTokenProvider, DelegatedTokenProvider, ReconnectRequired
from app.models import CalendarLink, Integration, IntegrationReport
from tests.admin_helpers import run_queued_jobs
from tests.test_oauth_delegated import (
    CALLBACK,
    CLIENT_SECRET,
    NOW,
    TOKEN_URL,
    add_integration,
    detail_path,
    load,
    pending_sign_ins,
    register_code_exchange,
    start_connect,
    store_connected_token,
)

APP_TENANT = "contoso.onmicrosoft.com"
APP_TOKEN_URL = f"https://login.test/{APP_TENANT}/oauth2/v2.0/token"
AUTHORIZATION_CODE = "authorization-code-SECRET-71f3"
SECRETS = (
    CLIENT_SECRET,
    AUTHORIZATION_CODE,
    "delegated-access-token-ONE-4f9c",
    "delegated-refresh-token-ONE-8d21",
    "delegated-access-token-TWO-a7e0",
    "delegated-refresh-token-TWO-rotated-5b3c",
    "delegated-access-token-OLD-0000",
    "delegated-refresh-token-OLD-0000",
    "app-only-access-token-ONE-c41d",
)


@pytest.fixture(autouse=True)
def everything_logged(app, caplog, monkeypatch):
    """Capture every level of the product's own loggers and the root logger (after create_app set them)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="app")
    monkeypatch.setattr(tokens, "application_tokens", tokens.ApplicationTokenCache())
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    return caplog


def assert_no_secret_in(text_, where):
    for secret in SECRETS:
        assert secret not in text_, f"{secret!r} leaked into {where}"


def test_the_delegated_life_cycle_leaks_nothing(app, login, world, mocked, caplog):
    with app.app_context():
        integration_id = add_integration(world)
    client = login(world.a.admin)
    pages = []

    params = start_connect(client, world, integration_id)
    verifier = pending_sign_ins(client)[params["state"]]["code_verifier"]
    register_code_exchange(mocked)
    callback = client.get(CALLBACK, query_string={"code": AUTHORIZATION_CODE, "state": params["state"]})
    pages.append(callback.get_data(as_text=True))
    for path in ("", "/edit"):
        pages.append(client.get(detail_path(world, integration_id) + path).get_data(as_text=True))

    # Renewal near expiry, then a refusal of the rotated refresh token.
    mocked.add(responses.POST, TOKEN_URL, json=load("token-refresh.json"))
    mocked.add(responses.POST, TOKEN_URL, status=400, json=load("error-invalid-grant-inactive.json"))
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        integration.token.expires_at = NOW + timedelta(minutes=1)
        db.session.commit()
        provider = DelegatedTokenProvider(integration_id)
        provider.get_token()
        with pytest.raises(ReconnectRequired) as refused:
            provider.refresh_token()
    pages.append(client.get(detail_path(world, integration_id)).get_data(as_text=True))
    assert "AADSTS700082" in pages[-1]

    # Disconnecting: the queued job deletes the subscription with the stored token, then drops the token.
    with app.app_context():
        link = db.session.scalar(db.select(CalendarLink).where(CalendarLink.integration_id == integration_id))
        link.subscription_id, link.subscription_client_state = "sub-me", "client-state"
        db.session.commit()
    disconnected = client.post(detail_path(world, integration_id) + "/disconnect", follow_redirects=True)
    pages.append(disconnected.get_data(as_text=True))
    mocked.add(responses.POST, "https://graph.test/v1.0/$batch", json={"responses": [{"id": "0", "status": 204}]})
    with app.app_context():
        assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(integration_id)): "done"}
    pages.append(client.get(detail_path(world, integration_id)).get_data(as_text=True))

    assert any(record.levelno == logging.DEBUG for record in caplog.records)  # the capture is wide open
    assert_no_secret_in(str(refused.value), "the exception")
    assert_no_secret_in(caplog.text, "the log")
    assert verifier not in caplog.text
    for page in pages:
        assert_no_secret_in(page, "a page")
        assert verifier not in page


def test_the_application_life_cycle_leaks_nothing(app, login, world, mocked, caplog):
    with app.app_context():
        integration = Integration(
            organisation_id=world.a.org,
            name="Rooms",
            auth_mode="application",
            tenant_id=APP_TENANT,
            client_id="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            client_secret=CLIENT_SECRET,
        )
        db.session.add(integration)
        db.session.flush()
        db.session.add(
            CalendarLink(integration_id=integration.id, mailbox="room-1@alpha.example", object_id=world.a.object)
        )
        db.session.commit()
        integration_id = integration.id
    client = login(world.a.admin)
    base = f"/orgs/{world.a.org}/integrations/{integration_id}"
    mocked.add(responses.POST, APP_TOKEN_URL, json=load("token-client-credentials.json"))
    mocked.add(
        responses.POST,
        "https://graph.test/v1.0/$batch",
        json={
            "responses": [
                {"id": "1", "status": 403, "body": {"error": {"code": "ErrorAccessDenied", "message": "No."}}}
            ]
        },
    )
    mocked.add(responses.POST, APP_TOKEN_URL, status=401, json=load("error-invalid-client-secret.json"))

    pages = []
    for _ in range(2):  # Test connection twice: the job runs it and stores its report
        client.post(base + "/test")
        with app.app_context():
            run_queued_jobs("connection_test")
            stored = db.session.scalar(db.select(IntegrationReport.result_json))
        assert_no_secret_in(stored, "the stored report")
        pages.append(client.get(base + "/test").get_data(as_text=True))
    pages += [client.get(base).get_data(as_text=True), client.get(base + "/edit").get_data(as_text=True)]

    assert "The client secret is wrong (AADSTS7000215)" in pages[1]
    assert_no_secret_in(caplog.text, "the log")
    for page in pages:
        assert_no_secret_in(page, "a page")
    with app.app_context(), pytest.raises(ReconnectRequired) as refused:
        ApplicationTokenProvider(integration_id).get_token()
    assert_no_secret_in(repr(refused.value) + str(refused.value), "the exception")


def test_secrets_are_encrypted_in_their_columns(app, world):
    with app.app_context():
        integration_id = add_integration(world)
        store_connected_token(integration_id, NOW + timedelta(hours=1))
        raw = db.session.execute(
            text(
                "SELECT i.client_secret, t.access_token, t.refresh_token FROM integrations i "
                "JOIN oauth_tokens t ON t.integration_id = i.id"
            )
        ).one()
    assert_no_secret_in(" ".join(raw), "the database")


def test_client_settings_never_show_the_secret(app, world):
    with app.app_context():
        integration_id = add_integration(world)
        settings = tokens.ClientSettings.of(db.session.get(Integration, integration_id))
    assert CLIENT_SECRET not in repr(settings)
    assert CLIENT_SECRET not in str(settings.cache_key)


def test_the_oauth_libraries_stay_quiet(app):
    """requests-oauthlib logs token bodies at DEBUG: the app keeps those loggers at WARNING."""
    for name in ("requests_oauthlib", "oauthlib"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
