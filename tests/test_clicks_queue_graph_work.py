"""A click in the portal never waits on Microsoft Graph: it queues a job and says so; the job calls Graph.

During every click below, any HTTP request fails loudly (it raises an AssertionError that no
error handling of the product catches), so a click that still talks to Graph, or to the token
endpoint, fails its test. Then the queued jobs run against a faked Graph and do the work.
"""

import json
import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests
import responses

from app.extensions import db
from app.models import CalendarLink, Integration, Job, OAuthToken
from tests.admin_helpers import TENANT, add_rooms_integration, audit_entries, count, run_queued_jobs

GRAPH = "https://graph.test/v1.0"
APP_TOKEN_URL = f"https://login.test/{TENANT}/oauth2/v2.0/token"
APP_TOKEN = {"token_type": "Bearer", "expires_in": 3599, "access_token": "app-only-access-token-JOBS-51a"}
REFRESH = '<meta http-equiv="refresh" content="3">'


class CalledOut(AssertionError):
    """An HTTP request was made where none may be."""


@pytest.fixture
def no_http(monkeypatch):
    """`with no_http() as attempted:` makes every HTTP request raise :class:`CalledOut` and lists it."""

    @contextmanager
    def forbidden():
        attempted = []

        def refuse(adapter, request, *args, **kwargs):
            attempted.append(f"{request.method} {request.url}")
            raise CalledOut(f"a portal request called out: {request.method} {request.url}")

        with monkeypatch.context() as patch:
            patch.setattr(requests.adapters.HTTPAdapter, "send", refuse)
            yield attempted

    return forbidden


def text_of(page_html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page_html))


def batch_answering(status, seen):
    """A `$batch` callback answering every item with `status`; records each item sent and its bearer token."""

    def answer(request):
        for item in json.loads(request.body)["requests"]:
            seen.append((item["method"], item["url"], request.headers["Authorization"]))
        replies = [{"id": item["id"], "status": status, "body": None} for item in json.loads(request.body)["requests"]]
        return 200, {}, json.dumps({"responses": replies})

    return answer


def subscribed(mailbox, number):
    return {"mailbox": mailbox, "subscription_id": f"sub-{number}", "subscription_client_state": f"state-{number}"}


# --- Disconnecting --------------------------------------------------------------------------


@pytest.fixture
def delegated(app, world, clock):
    """A connected delegated integration whose own calendar has a subscription."""
    with app.app_context():
        integration = add_rooms_integration(
            world.a,
            [subscribed("me", 1)],
            auth_mode="delegated",
            object_id=world.a.object,
            connected_account="desk@alpha.example",
        )
        row = db.session.get(Integration, integration.id)
        row.token = OAuthToken(
            access_token="delegated-access-JOBS-1",
            refresh_token="delegated-refresh-JOBS-1",
            expires_at=clock.now + timedelta(minutes=50),
        )
        db.session.commit()
        return integration


def test_disconnect_queues_the_subscription_deletion_and_keeps_the_token_it_needs(
    app, login, world, delegated, no_http
):
    client = login(world.a.admin)
    with no_http() as attempted:
        page = text_of(client.post(delegated.base + "/disconnect", follow_redirects=True).get_data(as_text=True))
    assert attempted == []
    assert "Disconnected from Microsoft." in page
    assert "Deleting 1 subscription(s) at Microsoft is queued; the stored tokens are deleted once that has run." in page
    with app.app_context():
        integration = db.session.get(Integration, delegated.id)
        assert (integration.connection_state, integration.connected_account) == ("not_connected", None)
        assert db.session.scalar(db.select(CalendarLink.subscription_id)) is None
        # The refresh token authorises the deletion, so it waits for the job.
        assert integration.token.refresh_token == "delegated-refresh-JOBS-1"
        assert audit_entries(delegated.id)[-1][:2] == (
            "disconnected",
            "Deleting 1 subscription(s) at Microsoft is queued; the stored tokens are deleted once that has run.",
        )

    seen = []
    with responses.RequestsMock() as graph:
        graph.add_callback(responses.POST, f"{GRAPH}/$batch", callback=batch_answering(204, seen))
        with app.app_context():
            assert run_queued_jobs("finish_disconnect") == {("finish_disconnect", str(delegated.id)): "done"}

    assert seen == [("DELETE", "/subscriptions/sub-1", "Bearer delegated-access-JOBS-1")]
    with app.app_context():
        assert count(OAuthToken) == 0
        assert db.session.get(Integration, delegated.id).connection_state == "not_connected"
    page = text_of(client.get(delegated.base).get_data(as_text=True))
    assert "not connected" in page and "is queued" not in page


def test_an_application_disconnect_deletes_every_room_subscription_in_the_job(app, login, world, no_http):
    with app.app_context():
        rooms = add_rooms_integration(world.a, [subscribed("r1@alpha.example", 1), subscribed("r2@alpha.example", 2)])
    client = login(world.a.admin)
    with no_http() as attempted:
        page = text_of(client.post(rooms.base + "/disconnect", follow_redirects=True).get_data(as_text=True))
    assert attempted == []
    assert "Deleting 2 subscription(s) at Microsoft is queued" in page

    seen = []
    with responses.RequestsMock() as graph:
        graph.add(responses.POST, APP_TOKEN_URL, json=APP_TOKEN)
        graph.add_callback(responses.POST, f"{GRAPH}/$batch", callback=batch_answering(204, seen))
        with app.app_context():
            run_queued_jobs("finish_disconnect")
    assert sorted(url for _, url, _ in seen) == ["/subscriptions/sub-1", "/subscriptions/sub-2"]
    assert {token for *_, token in seen} == {"Bearer app-only-access-token-JOBS-51a"}
    with app.app_context():
        assert db.session.get(Integration, rooms.id).connection_state == "not_connected"


# --- Removing a room --------------------------------------------------------------------------


def test_removing_a_room_says_its_subscription_deletion_is_queued(app, login, world, no_http):
    with app.app_context():
        rooms = add_rooms_integration(world.a, [subscribed("gone@alpha.example", 7)])
    link_id = rooms.links["gone@alpha.example"]
    client = login(world.a.admin)
    with no_http() as attempted:
        response = client.post(f"{rooms.base}/rooms/{link_id}/remove", follow_redirects=True)
    assert attempted == []
    assert (
        "Room gone@alpha.example removed. Its bookings stay; deleting its subscription at Microsoft is queued."
        in text_of(response.get_data(as_text=True))
    )

    with responses.RequestsMock() as graph:
        graph.add(responses.POST, APP_TOKEN_URL, json=APP_TOKEN)
        graph.add(responses.DELETE, f"{GRAPH}/subscriptions/sub-7", status=204)
        with app.app_context():
            assert run_queued_jobs("delete_subscription") == {("delete_subscription", "sub-7"): "done"}


# --- Test connection --------------------------------------------------------------------------


def test_test_connection_is_queued_and_its_page_refreshes_until_the_report_is_stored(app, login, world, no_http):
    with app.app_context():
        rooms = add_rooms_integration(world.a, ["ok@alpha.example", "gone@alpha.example"])
    client = login(world.a.admin)
    with no_http() as attempted:
        clicked = client.post(rooms.base + "/test")
        waiting = client.get(clicked.headers["Location"]).get_data(as_text=True)
    assert attempted == []
    assert clicked.status_code == 302 and clicked.headers["Location"] == rooms.base + "/test"
    assert "The connection test is queued" in text_of(waiting) and REFRESH in waiting

    def answer(request):
        replies = []
        for item in json.loads(request.body)["requests"]:
            gone = "gone@" in item["url"]
            body = {"error": {"code": "ResourceNotFound", "message": "Not found."}} if gone else {"id": "calendar"}
            replies.append({"id": item["id"], "status": 404 if gone else 200, "body": body})
        return 200, {}, json.dumps({"responses": replies})

    with responses.RequestsMock() as graph:
        graph.add(responses.POST, APP_TOKEN_URL, json=APP_TOKEN)
        graph.add_callback(responses.POST, f"{GRAPH}/$batch", callback=answer)
        with app.app_context():
            assert run_queued_jobs("connection_test") == {("connection_test", str(rooms.id)): "done"}

    with no_http():
        report = client.get(rooms.base + "/test").get_data(as_text=True)
    assert REFRESH not in report
    assert "2 enabled room(s): 1 ok, 1 not found, 0 access denied, 0 other." in report
    assert "ResourceNotFound" in report
    with app.app_context():
        from app.models import IntegrationReport

        stored = db.session.scalar(db.select(IntegrationReport).where(IntegrationReport.integration_id == rooms.id))
        assert [room["mailbox"] for room in stored.result["rooms"]] == ["gone@alpha.example", "ok@alpha.example"]
        assert APP_TOKEN["access_token"] not in stored.result_json


# --- Room discovery ---------------------------------------------------------------------------


def test_finding_rooms_is_queued_and_the_import_form_is_built_from_the_stored_rooms(app, login, world, clock, no_http):
    with app.app_context():
        rooms = add_rooms_integration(world.a, ["cf100@contoso.com", "old-room@contoso.com"])
    discover = rooms.base + "/rooms/discover"
    client = login(world.a.admin)
    with no_http() as attempted:
        clicked = client.post(discover)
        waiting = client.get(clicked.headers["Location"]).get_data(as_text=True)
    assert attempted == []
    assert clicked.status_code == 302 and clicked.headers["Location"] == discover
    assert "Finding rooms in Microsoft 365 is queued" in text_of(waiting) and REFRESH in waiting
    with app.app_context():
        assert [(job.kind, job.key) for job in db.session.scalars(db.select(Job))] == [
            ("discover_rooms", str(rooms.id))
        ]

    listed = [
        {"id": "1", "emailAddress": "cf100@contoso.com", "displayName": "Conf Room 100", "capacity": 50},
        {"id": "2", "emailAddress": "cf200@contoso.com", "displayName": "Conf Room 200"},
    ]
    with responses.RequestsMock() as graph:
        graph.add(responses.POST, APP_TOKEN_URL, json=APP_TOKEN)
        graph.add(responses.GET, f"{GRAPH}/places/microsoft.graph.roomlist", json={"value": []})
        graph.add(responses.GET, f"{GRAPH}/places/microsoft.graph.room", json={"value": listed})
        with app.app_context():
            assert run_queued_jobs("discover_rooms") == {("discover_rooms", str(rooms.id)): "done"}

    with no_http() as attempted:
        found = client.get(discover).get_data(as_text=True)
    assert attempted == []
    assert REFRESH not in found
    assert 'data-email="cf100@contoso.com"' in found and 'data-email="cf200@contoso.com"' in found
    assert 'name="rooms-0-email" type="hidden" value="cf200@contoso.com"' in found
    assert "2 room(s), 1 already in the room table" in text_of(found)
    assert "old-room@contoso.com" in found.split('id="missing"')[1]
    with app.app_context():
        missing = db.session.scalar(
            db.select(CalendarLink.places_missing_since).where(CalendarLink.mailbox == "old-room@contoso.com")
        )
        assert missing == clock.now


def test_the_portals_job_threads_run_the_queued_kinds(app):
    """A worker claims only kinds it has a handler for; these come with the app the scheduler runs in."""
    from app.jobs import handlers

    assert {"connection_test", "discover_rooms", "finish_disconnect", "delete_subscription"} <= set(
        handlers.load_handlers()
    )
