"""The identity platform: consent page, authorization code with PKCE, refresh rotation, client credentials."""

import base64

from tests.fakegraph.conftest import CLIENT_ID, DOMAIN, OTHER_USER, REDIRECT_URI, ROOM, SECRET, TENANT, USER

AUTHORIZE = f"/login/{TENANT}/oauth2/v2.0/authorize"
TOKEN = f"/login/{TENANT}/oauth2/v2.0/token"


def code_form(query, verifier, **overrides):
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "code": query["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    form.update(overrides)
    return form


def assert_refusal(response, status, error, code):
    body = response.get_json()
    assert response.status_code == status, body
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def test_the_consent_page_offers_the_tenants_users_but_not_its_rooms(stand):
    page = stand.client.get(
        AUTHORIZE,
        query_string={
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "offline_access Calendars.ReadWrite",
            "state": "s",
            "login_hint": USER,
        },
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'value="{USER}" selected' in html
    assert ROOM not in html
    assert 'name="decision" value="accept"' in html and 'name="decision" value="decline"' in html
    assert "Calendars.ReadWrite" in html


def test_accepting_redirects_with_a_code_that_pkce_redeems_for_tokens(stand):
    query, verifier = stand.authorize()
    assert query["state"] == "the-state"
    answer = stand.token(**code_form(query, verifier))
    body = answer.get_json()
    assert answer.status_code == 200, body
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["scope"] == "https://graph.microsoft.com/Calendars.ReadWrite https://graph.microsoft.com/User.Read"
    assert body["refresh_token"] and body["access_token"] != body["refresh_token"]
    assert "id_token" not in body  # openid was not asked for
    me = stand.get("me", body["access_token"]).get_json()
    assert me["userPrincipalName"] == USER


def test_a_verifier_that_does_not_match_the_challenge_is_refused(stand):
    query, verifier = stand.authorize()
    assert_refusal(stand.token(**code_form(query, verifier + "x")), 400, "invalid_grant", 50148)
    assert_refusal(stand.token(**code_form(query, "")), 400, "invalid_request", 900144)


def test_plain_pkce_compares_the_verifier_itself(stand):
    verifier = "v" * 50
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "Calendars.Read",
        "code_challenge": verifier,
        "code_challenge_method": "plain",
    }
    answer = stand.client.post(AUTHORIZE, data={**params, "account": USER, "decision": "accept"})
    code = answer.headers["Location"].split("code=")[1].split("&")[0]
    assert stand.token(**code_form({"code": code}, verifier)).status_code == 200


def test_a_code_is_good_for_one_redemption_within_ten_minutes(stand):
    query, verifier = stand.authorize()
    assert stand.token(**code_form(query, verifier)).status_code == 200
    assert_refusal(stand.token(**code_form(query, verifier)), 400, "invalid_grant", 54005)

    query, verifier = stand.authorize()
    stand.control("clock", {"advance_seconds": 601})
    assert_refusal(stand.token(**code_form(query, verifier)), 400, "invalid_grant", 70008)


def test_the_redirect_uri_must_be_the_one_the_code_was_issued_for(stand):
    query, verifier = stand.authorize()
    refused = stand.token(**code_form(query, verifier, redirect_uri="https://elsewhere.example/cb"))
    assert_refusal(refused, 400, "invalid_grant", 500112)


def test_declining_redirects_with_access_denied_and_aadsts65004(stand):
    query, _ = stand.authorize(decision="decline")
    assert query["error"] == "access_denied"
    assert query["error_description"].startswith("AADSTS65004")
    assert query["state"] == "the-state"
    assert "code" not in query


def test_unknown_tenants_apps_and_redirect_uris_get_an_error_page_not_a_redirect(stand):
    base = {"response_type": "code", "scope": "Calendars.Read", "redirect_uri": REDIRECT_URI, "client_id": CLIENT_ID}
    unknown_tenant = stand.client.get("/login/nowhere.example/oauth2/v2.0/authorize", query_string=base)
    unknown_app = stand.client.get(
        AUTHORIZE, query_string={**base, "client_id": "00000000-0000-0000-0000-000000000000"}
    )
    bad_redirect = stand.client.get(AUTHORIZE, query_string={**base, "redirect_uri": "https://evil.example/cb"})
    for response, code in ((unknown_tenant, "90002"), (unknown_app, "700016"), (bad_redirect, "50011")):
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert f"AADSTS{code}" in response.get_data(as_text=True)


def test_the_tenant_may_be_named_by_its_domain(stand):
    answer = stand.client.post(
        f"/login/{DOMAIN}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert answer.status_code == 200


def test_a_wrong_client_secret_is_invalid_client(stand):
    query, verifier = stand.authorize()
    refused = stand.token(**code_form(query, verifier, client_secret="guess"))
    assert_refusal(refused, 401, "invalid_client", 7000215)
    no_secret = stand.token(
        grant_type="client_credentials", client_id=CLIENT_ID, scope="https://graph.microsoft.com/.default"
    )
    assert_refusal(no_secret, 401, "invalid_client", 7000218)


def test_the_client_may_authenticate_with_http_basic(stand):
    credentials = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    answer = stand.client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"},
        headers={"Authorization": f"Basic {credentials}"},
    )
    assert answer.status_code == 200


def test_each_refresh_brings_a_new_refresh_token_and_the_used_one_stays_valid(stand):
    first = stand.sign_in()
    second = stand.token(
        grant_type="refresh_token", client_id=CLIENT_ID, client_secret=SECRET, refresh_token=first["refresh_token"]
    ).get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert stand.get("me", second["access_token"]).status_code == 200
    # Microsoft does not revoke a used refresh token; neither does the stand-in by default.
    again = stand.token(
        grant_type="refresh_token", client_id=CLIENT_ID, client_secret=SECRET, refresh_token=first["refresh_token"]
    )
    assert again.status_code == 200


def test_strict_rotation_refuses_a_refresh_token_used_before(stand):
    stand.control("settings", {"strict_refresh_rotation": True})
    first = stand.sign_in()
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": SECRET}
    newer = stand.token(**form, refresh_token=first["refresh_token"]).get_json()
    assert_refusal(stand.token(**form, refresh_token=first["refresh_token"]), 400, "invalid_grant", 50173)
    assert stand.token(**form, refresh_token=newer["refresh_token"]).status_code == 200


def test_revoking_a_user_ends_their_refresh_and_access_tokens(stand):
    tokens = stand.sign_in()
    stand.control("tokens/revoke", {"upn": USER})
    refused = stand.token(
        grant_type="refresh_token", client_id=CLIENT_ID, client_secret=SECRET, refresh_token=tokens["refresh_token"]
    )
    assert_refusal(refused, 400, "invalid_grant", 50173)
    assert stand.get("me", tokens["access_token"]).status_code == 401


def test_a_refresh_token_unused_for_90_days_expires(stand):
    tokens = stand.sign_in()
    stand.control("clock", {"advance_seconds": 91 * 86400})
    refused = stand.token(
        grant_type="refresh_token", client_id=CLIENT_ID, client_secret=SECRET, refresh_token=tokens["refresh_token"]
    )
    assert_refusal(refused, 400, "invalid_grant", 700082)


def test_refresh_may_not_ask_for_more_than_was_consented(stand):
    tokens = stand.sign_in(scope="offline_access Calendars.Read")
    refused = stand.token(
        grant_type="refresh_token",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=tokens["refresh_token"],
        scope="Calendars.ReadWrite",
    )
    assert_refusal(refused, 400, "invalid_grant", 65001)


def test_without_offline_access_there_is_no_refresh_token_and_openid_adds_an_id_token(stand):
    tokens = stand.sign_in(scope="openid Calendars.Read")
    assert "refresh_token" not in tokens
    assert tokens["id_token"].count(".") == 2


def test_client_credentials_need_the_default_scope_and_bring_no_refresh_token(stand):
    answer = stand.token(
        grant_type="client_credentials",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        scope="https://graph.microsoft.com/.default",
    ).get_json()
    assert set(answer) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    refused = stand.token(
        grant_type="client_credentials", client_id=CLIENT_ID, client_secret=SECRET, scope="Calendars.Read"
    )
    assert_refusal(refused, 400, "invalid_scope", 70011)


def test_an_expired_access_token_gets_401_with_a_bearer_challenge(stand):
    token = stand.app_token()
    assert stand.get(f"users/{ROOM}/calendar", token).status_code == 200
    stand.control("tokens/expire", {"client_id": CLIENT_ID})
    refused = stand.get(f"users/{ROOM}/calendar", token)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "InvalidAuthenticationToken"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
    assert stand.get(f"users/{ROOM}/calendar", "made-up").status_code == 401


def test_access_tokens_expire_with_the_stand_ins_clock(stand):
    token = stand.app_token()
    stand.control("clock", {"advance_seconds": 3600})
    assert stand.get(f"users/{ROOM}/calendar", token).status_code == 401


def test_unsupported_grant_types_are_refused(stand):
    assert_refusal(
        stand.token(grant_type="password", client_id=CLIENT_ID, client_secret=SECRET),
        400,
        "unsupported_grant_type",
        70003,
    )


def test_the_consent_page_preselects_the_configured_account_unless_the_request_hints_another(stand):
    stand.control("settings", {"consent_account": OTHER_USER})
    query = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "offline_access Calendars.ReadWrite",
        "state": "s",
    }
    unhinted = stand.client.get(AUTHORIZE, query_string=query).get_data(as_text=True)
    assert f'value="{OTHER_USER}" selected' in unhinted and f'value="{USER}" selected' not in unhinted
    hinted = stand.client.get(AUTHORIZE, query_string={**query, "login_hint": USER}).get_data(as_text=True)
    assert f'value="{USER}" selected' in hinted and f'value="{OTHER_USER}" selected' not in hinted
