"""Who may read which mailbox: delegated tokens only their own, app-only tokens any room the policy allows."""

import pytest

from tests.fakegraph.conftest import CLIENT_ID, DENIED_ROOM, OTHER_USER, ROOM, USER


def error_of(response):
    return response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["message"]


def test_a_delegated_token_reads_its_own_mailbox_by_me_or_by_upn(stand):
    token = stand.sign_in()["access_token"]
    assert stand.get("me/calendar", token).get_json()["owner"]["address"] == USER
    assert stand.get(f"users/{USER}/calendar", token).status_code == 200
    assert stand.get(f"users/{USER.upper()}/calendar", token).status_code == 200


def test_a_delegated_token_may_not_read_another_mailbox(stand):
    token = stand.sign_in()["access_token"]
    for mailbox in (OTHER_USER, ROOM):
        status, code, _ = error_of(
            stand.get(
                f"users/{mailbox}/calendarView/delta",
                token,
                query_string={"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2026-02-01T00:00:00Z"},
            )
        )
        assert (status, code) == (403, "ErrorAccessDenied")


def test_an_app_only_token_has_no_me(stand):
    token = stand.app_token()
    assert error_of(stand.get("me/calendar", token)) == (
        400,
        "BadRequest",
        "/me request is only valid with delegated authentication flow.",
    )
    assert stand.get("me", token).status_code == 400


def test_an_app_only_token_reads_rooms_except_those_the_access_policy_excludes(stand):
    token = stand.app_token()
    assert stand.get(f"users/{ROOM}/calendar", token, query_string={"$select": "id"}).status_code == 200
    assert error_of(stand.get(f"users/{DENIED_ROOM}/calendar", token)) == (
        403,
        "ErrorAccessDenied",
        "Access to OData is disabled.",
    )
    stand.control(f"mailboxes/{DENIED_ROOM}", {"app_only_denied": False})
    assert stand.get(f"users/{DENIED_ROOM}/calendar", token).status_code == 200


def test_an_unknown_mailbox_is_an_invalid_user(stand):
    token = stand.app_token()
    status, code, message = error_of(stand.get("users/nobody@contoso.example/calendar", token))
    assert (status, code) == (404, "ErrorInvalidUser")
    assert "nobody@contoso.example" in message


def test_mailboxes_of_another_tenant_are_unknown(stand):
    stand.control("tenants", {"id": "99999999-0000-0000-0000-000000000000", "domain": "fabrikam.example"})
    stand.control("tenants/fabrikam.example/apps", {"client_id": CLIENT_ID, "client_secret": "other"})
    answer = stand.client.post(
        "/login/fabrikam.example/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": "other",
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert stand.get(f"users/{ROOM}/calendar", answer.get_json()["access_token"]).status_code == 404


def test_writing_needs_calendars_readwrite(stand):
    event = {
        "subject": "x",
        "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"},
    }
    app_token = stand.app_token()  # the app holds Calendars.Read only
    assert error_of(stand.call("POST", f"users/{ROOM}/events", app_token, json=event))[:2] == (403, "ErrorAccessDenied")
    read_only = stand.sign_in(scope="offline_access Calendars.Read User.Read")["access_token"]
    assert stand.call("POST", "me/events", read_only, json=event).status_code == 403
    read_write = stand.sign_in()["access_token"]
    assert stand.call("POST", "me/events", read_write, json=event).status_code == 201


def test_the_profile_honours_select_and_needs_user_read(stand):
    token = stand.sign_in()["access_token"]
    profile = stand.get("me", token, query_string={"$select": "userPrincipalName,displayName"}).get_json()
    assert set(profile) == {"@odata.context", "id", "userPrincipalName", "displayName"}
    no_profile = stand.sign_in(scope="offline_access Calendars.Read")["access_token"]
    assert error_of(stand.get("me", no_profile))[:2] == (403, "Authorization_RequestDenied")


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc"])
def test_requests_without_a_bearer_token_are_unauthorized(stand, header):
    headers = {"Authorization": header} if header else {}
    response = stand.client.get(f"/v1.0/users/{ROOM}/calendar", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "InvalidAuthenticationToken"


def test_unknown_graph_paths_answer_in_graphs_shape(stand):
    response = stand.get("me/mailFolders", stand.sign_in()["access_token"])
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "BadRequest"
    assert response.headers["request-id"]
