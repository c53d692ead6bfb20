"""A failed, cancelled or forged sign-in leaves the integration exactly as it was.

"Needs reconnect" means one thing: Microsoft refused the stored tokens. A sign-in that
goes wrong is reported on the page and in the audit log, and changes nothing else.
"""

import html
from datetime import timedelta

import pytest
import responses

from app.extensions import db
from app.models import AuditEntry, CalendarLink, Integration
from tests.test_oauth_delegated import (
    CALLBACK,
    NOW,
    TOKEN_URL,
    detail_path,
    frozen_clock,  # noqa: F401 (a fixture)
    integration_id,  # noqa: F401 (a fixture)
    load,
    refuse_code_as_already_redeemed,
    start_connect,
    store_connected_token,
)

OLD_ACCESS = "delegated-access-token-OLD-0000"
OLD_REFRESH = "delegated-refresh-token-OLD-0000"


def _connected_state(integration_id):  # noqa: F811
    db.session.expire_all()
    integration = db.session.get(Integration, integration_id)
    token = integration.token
    return (
        integration.connection_state,
        integration.connection_error,
        integration.connected_account,
        token.access_token if token else None,
        token.refresh_token if token else None,
    )


CONNECTED = ("connected", None, "front.desk@alpha.example", OLD_ACCESS, OLD_REFRESH)


@pytest.fixture
def connected_integration(app, integration_id, frozen_clock):  # noqa: F811
    with app.app_context():
        store_connected_token(integration_id, NOW + timedelta(minutes=50))
        db.session.add(CalendarLink(integration_id=integration_id, mailbox="me", object_id=_object_of(integration_id)))
        db.session.commit()
    return integration_id


def _object_of(integration_id):  # noqa: F811
    return db.session.get(Integration, integration_id).object_id


def _sign_in_failures(integration_id):  # noqa: F811
    return db.session.scalars(
        db.select(AuditEntry.detail).where(
            AuditEntry.integration_id == integration_id, AuditEntry.action == "sign_in_failed"
        )
    ).all()


def test_cancelling_a_reconnect_at_microsoft_leaves_the_connection_working(
    app, login, world, connected_integration, mocked
):
    client = login(world.a.admin)
    params = start_connect(client, world, connected_integration)

    response = client.get(
        CALLBACK,
        query_string={
            "error": "access_denied",
            "error_description": "AADSTS65004: User declined to consent to access the app.",
            "state": params["state"],
        },
        follow_redirects=True,
    )

    body = html.unescape(response.get_data(as_text=True))
    assert "The sign-in did not complete: Consent was declined (AADSTS65004)." in body
    assert "The integration still syncs front.desk@alpha.example's calendar" in body
    with app.app_context():
        assert _connected_state(connected_integration) == CONNECTED
        assert _sign_in_failures(connected_integration) == ["Consent was declined (AADSTS65004)."]
    page = client.get(detail_path(world, connected_integration)).get_data(as_text=True)
    assert "needs reconnect" not in page


def test_a_forged_state_while_a_reconnect_is_pending_changes_nothing(app, login, world, connected_integration, mocked):
    client = login(world.a.admin)
    start_connect(client, world, connected_integration)

    response = client.get(CALLBACK, query_string={"code": "stolen", "state": "forged-state"}, follow_redirects=True)

    assert "does not belong to a sign-in started here, so it was ignored" in response.get_data(as_text=True)
    assert len(mocked.calls) == 0
    with app.app_context():
        assert _connected_state(connected_integration) == CONNECTED
        assert len(_sign_in_failures(connected_integration)) == 1


def test_a_replayed_callback_changes_nothing(app, login, world, connected_integration, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, connected_integration)
    refuse_code_as_already_redeemed(mocked)

    response = client.get(CALLBACK, query_string={"code": "used", "state": params["state"]}, follow_redirects=True)

    assert "The authorization code was already used (AADSTS54005)" in response.get_data(as_text=True)
    with app.app_context():
        assert _connected_state(connected_integration) == CONNECTED
        assert _sign_in_failures(connected_integration) == ["The authorization code was already used (AADSTS54005)."]


def test_a_sign_in_without_a_refresh_token_keeps_the_stored_tokens(app, login, world, connected_integration, mocked):
    client = login(world.a.admin)
    params = start_connect(client, world, connected_integration)
    answer = dict(load("token-authorization-code.json"))
    answer.pop("refresh_token")
    mocked.add(responses.POST, TOKEN_URL, json=answer)

    client.get(CALLBACK, query_string={"code": "c", "state": params["state"]})

    with app.app_context():
        assert _connected_state(connected_integration) == CONNECTED


def test_a_failed_first_sign_in_leaves_the_integration_not_connected(app, login, world, integration_id, mocked):  # noqa: F811
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)

    response = client.get(
        CALLBACK,
        query_string={"error": "access_denied", "error_description": "AADSTS65004: declined", "state": params["state"]},
        follow_redirects=True,
    )

    assert "Consent was declined (AADSTS65004)" in response.get_data(as_text=True)
    with app.app_context():
        assert _connected_state(integration_id) == ("not_connected", None, None, None, None)
        assert _sign_in_failures(integration_id) == ["Consent was declined (AADSTS65004)."]
    page = client.get(detail_path(world, integration_id)).get_data(as_text=True)
    assert "needs reconnect" not in page
