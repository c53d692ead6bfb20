"""Errors a person can act on: one mapping from what was recorded to a sentence and what to do.

The pages show the sentence and the action first; the raw code, request id and URL stay
behind a "Details for support" disclosure.
"""

import re
from datetime import UTC, datetime

import pytest

from app.extensions import db
from app.graph import error_texts
from app.graph.error_texts import explain
from app.graph.errors import GraphForbidden, GraphThrottled, GraphTransportError
from app.graph.tokens import ReconnectRequired, TokenServiceUnavailable
from app.models import Job
from app.models.job import JOB_FAILED
from tests.admin_helpers import add_rooms_integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DENIED = (
    "Graph 403 ErrorAccessDenied: Access to OData is disabled. "
    "(GET https://graph.microsoft.com/v1.0/users/room@alpha.example/calendar/events; request-id 5d1f7a2e-0b1c-4e7a)"
)

# What earlier code and each writer store, and the kind a person should be told about.
STORED = [
    ("Graph 401 InvalidAuthenticationToken: Lifetime validation failed, the token is expired.", "sign_in_expired"),
    ("The sign-in is no longer valid", "sign_in_expired"),
    ("ReconnectRequired: invalid_grant: AADSTS70008: The refresh token has expired.", "sign_in_expired"),
    ("Consent was revoked (AADSTS50173)", "sign_in_expired"),
    ("Conditional Access blocked the sign-in (AADSTS53003)", "sign_in_blocked"),
    ("The app (client id) is not registered in this tenant (AADSTS700016)", "app_not_found"),
    ("The client secret is wrong (AADSTS7000215)", "secret_invalid"),
    ("Microsoft issued no token: The client secret has expired (AADSTS7000222). Check the tenant id", "secret_invalid"),
    ("No client secret is set: enter it in the settings", "secret_invalid"),
    ("The app has no consent for the requested permissions (AADSTS65001)", "consent_missing"),
    (DENIED, "access_denied"),
    ("GraphForbidden: Graph 403 ErrorAccessDenied: Access is denied.", "access_denied"),
    ("HTTP 403: the app may not read this mailbox.", "access_denied"),
    ("Graph 404 ErrorItemNotFound: The specified object was not found in the store.", "mailbox_not_found"),
    ("ErrorInvalidUser: The requested user 'x@alpha.example' is invalid.", "mailbox_not_found"),
    ("Graph 404 MailboxNotEnabledForRESTAPI: The mailbox is either inactive, soft-deleted", "mailbox_not_enabled"),
    ("GraphThrottled: Graph 429 TooManyRequests: Please retry again later.", "throttled"),
    ("Graph 503 ServiceUnavailable: Service unavailable.", "unavailable"),
    ("GraphTransportError: Graph: Read timed out. (GET https://graph.microsoft.com/v1.0/$batch)", "unavailable"),
    ("Graph 410 SyncStateNotFound: The sync state generation is not found; generation=518", "sync_state_expired"),
    (
        "Graph 400 InvalidRequest: Subscription validation request failed. Notification endpoint must respond "
        "with 200 OK to validation request.",
        "subscription_validation",
    ),
    ("Internal error (KeyError); see the server log.", "unknown"),
    ("Its worker stopped without finishing it, 3 times.", "unknown"),
]

# Each kind's text names the step that helps; the tests read the action, not only the sentence.
ACTIONS = {
    "sign_in_expired": "sign in with Microsoft again",
    "sign_in_blocked": "Conditional Access policy",
    "app_not_found": "client id and the tenant id",
    "secret_invalid": "new client secret",
    "consent_missing": "grant admin consent",
    "access_denied": "application access policy",
    "mailbox_not_found": "UPN",
    "mailbox_not_enabled": "Exchange Online",
    "throttled": "retried automatically",
    "unavailable": "retried automatically",
    "sync_state_expired": "full sync was started automatically",
    "subscription_validation": "PUBLIC_BASE_URL",
    "unknown": "contact support",
}


@pytest.mark.parametrize("stored, kind", STORED)
def test_each_stored_error_text_is_recognised(stored, kind):
    explained = explain(stored)
    assert explained.kind == kind
    assert explained.raw == stored


@pytest.mark.parametrize("kind", sorted(error_texts.TEXTS))
def test_each_kind_says_what_to_do(kind):
    explained = error_texts.ErrorText(kind, raw="x")
    assert ACTIONS[kind] in explained.action
    assert explained.sentence.endswith(".") and explained.action.endswith(".")


def test_the_access_denied_sentence_is_the_one_test_connection_showed():
    assert explain(DENIED).sentence == (
        "Access denied: the tenant's application access policy or RBAC scope excludes this mailbox."
    )


def test_a_stored_graph_error_gives_up_its_code_status_request_id_and_url():
    explained = explain(DENIED)
    assert (explained.code, explained.status, explained.request_id) == ("ErrorAccessDenied", 403, "5d1f7a2e-0b1c-4e7a")
    assert explained.url == "https://graph.microsoft.com/v1.0/users/room@alpha.example/calendar/events"


def test_live_errors_are_explained_from_their_fields():
    denied = GraphForbidden(
        "Access to OData is disabled.",
        status=403,
        code="ErrorAccessDenied",
        request_id="rid-12345678",
        method="GET",
        url="https://graph.microsoft.com/v1.0/users/a@alpha.example/calendar?$select=id",
    )
    explained = explain(denied)
    assert (explained.kind, explained.request_id) == ("access_denied", "rid-12345678")
    assert explained.url == "https://graph.microsoft.com/v1.0/users/a@alpha.example/calendar"
    assert explain(GraphThrottled("busy", status=429)).kind == "throttled"
    assert explain(GraphThrottled("gateway", status=503)).kind == "unavailable"
    assert explain(GraphTransportError("Connection reset")).kind == "unavailable"
    secret = explain(ReconnectRequired("The client secret has expired (AADSTS7000222)", aadsts=7000222))
    assert (secret.kind, secret.code) == ("secret_invalid", "AADSTS7000222")
    assert explain(TokenServiceUnavailable("The token service answered 502")).kind == "unavailable"


def test_no_error_gives_nothing_to_show():
    assert explain(None) is None and explain("") is None


# --- The pages -------------------------------------------------------------------------


def disclosure_split(html):
    """(what shows before any disclosure is opened, what the disclosures hold)."""
    hidden = "".join(re.findall(r"<details class=\"error-details\">.*?</details>", html, re.S))
    shown = re.sub(r"<details class=\"error-details\">.*?</details>", "", html, flags=re.S)
    return shown, hidden


@pytest.fixture
def failing(app, world, clock):
    with app.app_context():
        rooms = add_rooms_integration(
            world.a,
            [dict(mailbox="denied@alpha.example", last_sync_status="error", last_sync_error=DENIED)],
            connection_state="needs_reconnect",
            connection_error="The client secret has expired (AADSTS7000222)",
        )
        job = Job(
            kind="sync_link",
            key=str(rooms.links["denied@alpha.example"]),
            state=JOB_FAILED,
            run_at=NOW,
            attempts=8,
            created_at=NOW,
            failed_at=NOW,
            claimed_by="web-3:991:f00dcafe",
            last_error="GraphThrottled: Graph 429 TooManyRequests: Please retry later. (request-id 77aa-88bb-99cc)",
        )
        db.session.add(job)
        db.session.commit()
        rooms.job = job.id
        return rooms


def test_the_room_table_leads_with_the_sentence_and_keeps_the_code_for_support(login, world, failing):
    page = login(world.a.admin).get(failing.base + "/rooms").get_data(as_text=True)
    start = page.index(f'<tr id="room-{failing.links["denied@alpha.example"]}"')
    shown, hidden = disclosure_split(page[start : page.index("</tr>", start)])
    assert "application access policy or RBAC scope excludes this mailbox." in shown
    assert "ErrorAccessDenied" not in shown and "5d1f7a2e-0b1c-4e7a" not in shown
    assert "<summary>Details for support</summary>" in hidden
    assert "<code>ErrorAccessDenied</code>" in hidden and "<code>5d1f7a2e-0b1c-4e7a</code>" in hidden
    assert "https://graph.microsoft.com/v1.0/users/room@alpha.example/calendar/events" in hidden


def test_a_subscription_failing_for_the_same_reason_as_the_sync_is_not_explained_twice(app, login, world):
    with app.app_context():
        rooms = add_rooms_integration(
            world.a,
            [
                dict(
                    mailbox="denied@alpha.example",
                    last_sync_status="error",
                    last_sync_error=DENIED,
                    subscription_error=DENIED.replace("GET", "POST"),
                ),
                dict(
                    mailbox="throttled@alpha.example",
                    last_sync_status="error",
                    last_sync_error=DENIED,
                    subscription_error="Graph 429 TooManyRequests: Please retry later. (request-id 11aa-22bb)",
                ),
            ],
        )
    page = login(world.a.admin).get(rooms.base + "/rooms").get_data(as_text=True)

    def row(mailbox):
        start = page.index(f'<tr id="room-{rooms.links[mailbox]}"')
        return disclosure_split(page[start : page.index("</tr>", start)])

    shown, hidden = row("denied@alpha.example")
    assert shown.count("excludes this mailbox.") == 1
    assert "Subscription: the same problem." in shown
    assert hidden.count("<summary>Details for support</summary>") == 2  # each keeps its own request id
    shown, _ = row("throttled@alpha.example")
    assert "excludes this mailbox." in shown and "Subscription: Microsoft asked the app to slow down" in shown


def test_failed_jobs_say_what_happened_and_keep_the_raw_error_behind_the_disclosure(login, world, failing):
    page = login(world.a.admin).get(failing.base).get_data(as_text=True)
    start = page.index(f'<tr id="job-{failing.job}"')
    shown, hidden = disclosure_split(page[start : page.index("</tr>", start)])
    assert "Microsoft asked the app to slow down" in shown and "retried automatically" in shown
    assert "TooManyRequests" not in shown and "TooManyRequests" in hidden and "77aa-88bb-99cc" in hidden


def test_the_connection_error_on_the_status_page_says_what_to_do(login, world, failing):
    page = login(world.a.admin).get(failing.base).get_data(as_text=True)
    start = page.index('id="connection-error"')
    shown, hidden = disclosure_split(page[start : page.index("</section>", start)])
    assert "Microsoft refused the client secret" in shown and "Create a new client secret" in shown
    assert "AADSTS7000222" not in shown and "<code>AADSTS7000222</code>" in hidden


def test_the_support_overview_explains_a_reconnect_and_keeps_the_code_inside_details(login, world, failing):
    page = login(world.support).get("/support/integrations").get_data(as_text=True)
    start = page.index(f'id="integration-{failing.id}"')
    shown, hidden = disclosure_split(page[start : page.index("</tr>", start)])
    assert "Microsoft refused the client secret" in shown and "AADSTS7000222" not in shown
    assert "AADSTS7000222" in hidden


@pytest.fixture
def scheduler_running(app, failing):
    from app.scheduler import lease

    with app.app_context():
        assert lease.acquire("web-3:991:f00dcafe", ttl=60)


def test_a_customer_admin_sees_no_worker_id(login, world, failing, scheduler_running):
    page = login(world.a.admin).get(failing.base).get_data(as_text=True)
    assert "running" in page and "web-3:991:f00dcafe" not in page


def test_support_sees_the_worker_id(login, world, failing, scheduler_running):
    assert "web-3:991:f00dcafe" in login(world.support).get(failing.base).get_data(as_text=True)
