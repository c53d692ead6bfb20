"""Application mode: Test connection per room (a job, its stored report), the minimal room rows, and isolation."""

import json
from types import SimpleNamespace

import pytest
import responses

from app.connection import check
from app.extensions import db
from app.graph.paths import mailbox_path
from app.models import BookableObject, CalendarLink, Integration, IntegrationReport, SyncLogEntry
from tests.admin_helpers import run_queued_jobs

TENANT = "contoso.onmicrosoft.com"
TOKEN_URL = f"https://login.test/{TENANT}/oauth2/v2.0/token"
BATCH_URL = "https://graph.test/v1.0/$batch"
APP_TOKEN = {"token_type": "Bearer", "expires_in": 3599, "access_token": "app-only-access-token-ONE-c41d"}

ROOM_ANSWERS = {
    "room-ok@alpha.example": (200, {"id": "AAMkAD-calendar"}),
    "room-gone@alpha.example": (
        404,
        {"error": {"code": "ResourceNotFound", "message": "Resource could not be discovered."}},
    ),
    "room-blocked@alpha.example": (
        403,
        {"error": {"code": "ErrorAccessDenied", "message": "Access to OData is disabled."}},
    ),
    "room-onprem@alpha.example": (
        404,
        {"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is either inactive or on-premise."}},
    ),
    "room-odd@alpha.example": (
        400,
        {"error": {"code": "ErrorInvalidRequest", "message": "The request is invalid."}},
    ),
}


def add_application_integration(organisation, rooms=(), **overrides):
    values = dict(
        organisation_id=organisation.org,
        name="Meeting rooms",
        auth_mode="application",
        tenant_id=TENANT,
        client_id="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        client_secret="app-client-secret-K9x%",
    )
    values.update(overrides)
    integration = Integration(**values)
    db.session.add(integration)
    db.session.flush()
    for mailbox, enabled in rooms:
        db.session.add(
            CalendarLink(integration_id=integration.id, mailbox=mailbox, object_id=organisation.object, enabled=enabled)
        )
    db.session.commit()
    return integration.id


@pytest.fixture
def rooms(app, world):
    with app.app_context():
        listed = [(mailbox, True) for mailbox in ROOM_ANSWERS] + [("room-off@alpha.example", False)]
        integration_id = add_application_integration(world.a, listed)
        link_ids = dict(db.session.execute(db.select(CalendarLink.mailbox, CalendarLink.id)).all())
        return SimpleNamespace(
            integration=integration_id, links=link_ids, base=f"/orgs/{world.a.org}/integrations/{integration_id}"
        )


def batch_answering(answers_by_mailbox, seen):
    """A $batch callback answering each item from the mailbox in its url."""

    def answer(request):
        body = json.loads(request.body)
        seen.append(body)
        responses_ = []
        for item in body["requests"]:
            mailbox = item["url"].split("/")[2]
            status, payload = answers_by_mailbox(mailbox)
            responses_.append({"id": item["id"], "status": status, "headers": {}, "body": payload})
        return 200, {}, json.dumps({"responses": responses_})

    return answer


def row_of(page, mailbox):
    start = page.index(f"<td>{mailbox}</td>")
    return page[start : page.index("</tr>", start)]


REFRESH = '<meta http-equiv="refresh" content="3">'


def connection_tested(app, client, base):
    """Press Test connection, let the queued job run as the job pool would, and return the report page."""
    clicked = client.post(base + "/test")
    assert clicked.status_code == 302 and clicked.headers["Location"] == base + "/test"
    integration_id = base.rsplit("/", 1)[1]
    with app.app_context():
        assert run_queued_jobs(check.CONNECTION_TEST) == {(check.CONNECTION_TEST, integration_id): "done"}
    page = client.get(base + "/test")
    assert page.status_code == 200
    assert REFRESH not in page.get_data(as_text=True)
    return page


# --- Test connection ---------------------------------------------------------------------


def test_each_enabled_room_gets_its_own_verdict(app, login, world, rooms, mocked):
    mocked.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
    batches = []
    mocked.add_callback(responses.POST, BATCH_URL, callback=batch_answering(ROOM_ANSWERS.get, batches))

    response = connection_tested(app, login(world.a.admin), rooms.base)

    assert len(batches) == 1
    requests_sent = {item["url"]: item for item in batches[0]["requests"]}
    assert set(requests_sent) == {f"/users/{mailbox}/calendar?$select=id" for mailbox in ROOM_ANSWERS}
    assert {item["id"] for item in requests_sent.values()} == {str(rooms.links[mailbox]) for mailbox in ROOM_ANSWERS}
    page = response.get_data(as_text=True)
    assert "The app got a token from Microsoft." in page
    assert "5 enabled room(s): 1 ok, 2 not found, 1 access denied, 1 other." in page
    assert ">ok<" in row_of(page, "room-ok@alpha.example")
    gone = row_of(page, "room-gone@alpha.example")
    assert "mailbox not found" in gone and "ResourceNotFound" in gone and "Check the room&#39;s UPN" in gone
    blocked = row_of(page, "room-blocked@alpha.example")
    assert "access denied" in blocked and "ErrorAccessDenied" in blocked
    assert "application access policy" in blocked and "RBAC for Applications" in blocked
    onprem = row_of(page, "room-onprem@alpha.example")
    assert "mailbox not found" in onprem and "MailboxNotEnabledForRESTAPI" in onprem
    odd = row_of(page, "room-odd@alpha.example")
    assert "other error" in odd and "ErrorInvalidRequest: The request is invalid." in odd
    assert "room-off@alpha.example" not in page


def test_three_hundred_rooms_cost_fifteen_batch_requests(app, login, world, mocked):
    with app.app_context():
        listed = [(f"room-{number:03d}@alpha.example", True) for number in range(300)]
        integration_id = add_application_integration(world.a, listed)
    mocked.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
    batches = []
    mocked.add_callback(
        responses.POST, BATCH_URL, callback=batch_answering(lambda mailbox: (200, {"id": "c"}), batches)
    )
    response = connection_tested(app, login(world.a.admin), f"/orgs/{world.a.org}/integrations/{integration_id}")
    assert "300 enabled room(s): 300 ok, 0 not found" in response.get_data(as_text=True)
    assert [len(batch["requests"]) for batch in batches] == [20] * 15


def test_a_token_failure_gives_one_clear_message(app, login, world, rooms, mocked):
    mocked.add(
        responses.POST,
        TOKEN_URL,
        status=401,
        json={
            "error": "invalid_client",
            "error_description": "AADSTS7000222: The provided client secret keys are expired.",
            "error_codes": [7000222],
        },
    )
    page = connection_tested(app, login(world.a.admin), rooms.base).get_data(as_text=True)
    assert "Microsoft issued no token." in page and "Microsoft refused the client secret" in page
    assert "Create a new client secret" in page
    assert "<code>The client secret has expired (AADSTS7000222)</code>" in page.split("Details for support")[1]
    assert "room-ok@alpha.example" not in page
    assert len(mocked.calls) == 1  # no $batch without a token
    with app.app_context():
        assert db.session.get(Integration, rooms.integration).connection_state == "needs_reconnect"


def test_a_working_token_marks_the_integration_connected(app, login, world, mocked):
    with app.app_context():
        integration_id = add_application_integration(
            world.a, connection_state="needs_reconnect", connection_error="The client secret is wrong (AADSTS7000215)"
        )
    mocked.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
    client = login(world.a.admin)
    page = connection_tested(app, client, f"/orgs/{world.a.org}/integrations/{integration_id}").get_data(as_text=True)
    assert "No enabled rooms to read yet" in page
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.connection_state, integration.connection_error) == ("connected", None)


def test_connecting_through_the_test_subscribes_rooms_added_before(app, login, world, mocked):
    from app.models.job import Job

    with app.app_context():
        integration_id = add_application_integration(
            world.a,
            [("early@alpha.example", True), ("off@alpha.example", False)],
            connection_state="not_connected",
        )
        early = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.mailbox == "early@alpha.example"))
    mocked.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
    mocked.add_callback(
        responses.POST,
        BATCH_URL,
        callback=batch_answering(lambda mailbox: (200, {"id": "c"}), []),
        content_type="application/json",
    )
    connection_tested(app, login(world.a.admin), f"/orgs/{world.a.org}/integrations/{integration_id}")
    with app.app_context():
        queued = db.session.execute(db.select(Job.kind, Job.key).where(Job.kind == "subscribe_link")).all()
        assert queued == [("subscribe_link", str(early))]


def test_delegated_integrations_have_no_connection_test(app, login, world):
    with app.app_context():
        integration_id = add_application_integration(world.a, auth_mode="delegated", object_id=world.a.object)
    client = login(world.a.admin)
    assert "Test connection" not in client.get(f"/orgs/{world.a.org}/integrations/{integration_id}").get_data(
        as_text=True
    )
    assert client.post(f"/orgs/{world.a.org}/integrations/{integration_id}/test").status_code == 400
    assert client.get(f"/orgs/{world.a.org}/integrations/{integration_id}/test").status_code == 400
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(IntegrationReport)) == 0


def test_the_report_page_before_any_test_offers_one_and_does_not_refresh(app, login, world, rooms, mocked):
    page = login(world.a.admin).get(rooms.base + "/test").get_data(as_text=True)
    assert "No connection test has run yet." in page
    assert REFRESH not in page and f'action="{rooms.base}/test"' in page
    assert len(mocked.calls) == 0


def test_a_test_waiting_for_the_job_pool_says_so_and_names_a_missing_scheduler(app, login, world, rooms, mocked):
    client = login(world.a.admin)
    client.post(rooms.base + "/test")
    page = client.get(rooms.base + "/test").get_data(as_text=True)
    assert "The connection test is queued" in page and REFRESH in page
    assert "No scheduler is running at the moment" in page
    assert "Test again" not in page  # no second click while one is pending
    assert len(mocked.calls) == 0


def test_a_test_whose_job_was_parked_says_why_and_stops_refreshing(app, login, world, rooms, mocked, monkeypatch):
    def broken(integration):
        raise RuntimeError("boom")

    monkeypatch.setattr(check, "run_connection_test", broken)
    app.config["JOB_MAX_ATTEMPTS"] = 1
    client = login(world.a.admin)
    client.post(rooms.base + "/test")
    with app.app_context():
        assert run_queued_jobs(check.CONNECTION_TEST) == {(check.CONNECTION_TEST, str(rooms.integration)): "failed"}
    page = client.get(rooms.base + "/test").get_data(as_text=True)
    assert "The connection test did not finish." in page and "contact support" in page
    assert "<code>RuntimeError: boom</code>" in page.split("Details for support")[1]
    assert REFRESH not in page and "Test again" in page


def test_a_click_while_a_test_runs_waits_for_the_next_report(app, login, world, rooms, mocked, monkeypatch):
    mocked.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
    mocked.add_callback(responses.POST, BATCH_URL, callback=batch_answering(ROOM_ANSWERS.get, []))
    client = login(world.a.admin)
    client.post(rooms.base + "/test")
    first_run = check.run_connection_test
    pages_meanwhile = []

    def clicked_again_while_running(integration):
        if not pages_meanwhile:
            client.post(rooms.base + "/test")
            pages_meanwhile.append(client.get(rooms.base + "/test").get_data(as_text=True))
        return first_run(integration)

    monkeypatch.setattr(check, "run_connection_test", clicked_again_while_running)
    with app.app_context():
        outcomes = run_queued_jobs(check.CONNECTION_TEST)
    # The first run answered the click made before it started; the second click got a run of its own.
    assert list(outcomes.values()) == ["done"]
    assert "The connection test is running" in pages_meanwhile[0]
    assert len([call for call in mocked.calls if call.request.url == BATCH_URL]) == 2
    assert REFRESH not in client.get(rooms.base + "/test").get_data(as_text=True)


# --- Room rows ---------------------------------------------------------------------------


def test_a_room_is_added_lower_case_and_only_once(app, login, world, rooms):
    client = login(world.a.admin)
    response = client.post(
        rooms.base + "/rooms", data={"upn": "  Board-Room@Alpha.Example ", "object_id": world.a.object}
    )
    assert response.status_code == 302
    with app.app_context():
        assert (
            db.session.scalar(
                db.select(CalendarLink).where(CalendarLink.mailbox == "board-room@alpha.example")
            ).object_id
            == world.a.object
        )

    again = client.post(rooms.base + "/rooms", data={"upn": "BOARD-ROOM@alpha.example", "object_id": world.a.object})
    assert again.status_code == 200
    assert '<p class="error" id="upn-error">This room is in the list already.</p>' in again.get_data(as_text=True)
    with app.app_context():
        count = db.session.scalar(
            db.select(db.func.count())
            .select_from(CalendarLink)
            .where(CalendarLink.mailbox == "board-room@alpha.example")
        )
        assert count == 1


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"upn": "not an address", "object_id": "OBJ"}, "upn", "Enter an e-mail address such as room-1@contoso.com."),
        ({"upn": "", "object_id": "OBJ"}, "upn", "Enter the e-mail address (UPN) of the room mailbox."),
        ({"upn": "room-9@alpha.example", "object_id": 0}, "object_id", "Choose the object this room books."),
        ({"upn": "room-9@alpha.example", "object_id": "B_OBJ"}, "object_id", "Not a valid choice."),
    ],
)
def test_room_errors_are_shown_next_to_their_field(app, login, world, rooms, data, field, message):
    data = dict(data)
    data["object_id"] = {"OBJ": world.a.object, "B_OBJ": world.b.object}.get(data["object_id"], data["object_id"])
    response = login(world.a.admin).post(rooms.base + "/rooms", data=data)
    assert response.status_code == 200
    assert f'<p class="error" id="{field}-error">{message}</p>' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(CalendarLink)) == len(ROOM_ANSWERS) + 1


def test_a_room_is_removed_after_confirmation(app, login, world, rooms):
    client = login(world.a.admin)
    link_id = rooms.links["room-gone@alpha.example"]
    with app.app_context():
        db.session.add(
            SyncLogEntry(organisation_id=world.a.org, integration_id=rooms.integration, link_id=link_id, action="error")
        )
        db.session.commit()
    confirm = client.get(f"{rooms.base}/rooms/{link_id}/remove")
    assert confirm.status_code == 200
    assert "Remove room room-gone@alpha.example?" in confirm.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(CalendarLink, link_id) is not None

    response = client.post(f"{rooms.base}/rooms/{link_id}/remove", follow_redirects=True)
    assert "Room room-gone@alpha.example removed." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(CalendarLink, link_id) is None
        assert db.session.scalar(db.select(SyncLogEntry.link_id)) is None  # the log stays, unlinked


def test_rooms_of_another_integration_cannot_be_removed_through_this_one(app, login, world, rooms):
    with app.app_context():
        other = add_application_integration(world.a, [("elsewhere@alpha.example", True)], name="Other")
        other_link = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.integration_id == other))
    response = login(world.a.admin).post(f"{rooms.base}/rooms/{other_link}/remove")
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(CalendarLink, other_link) is not None


def test_the_own_calendar_is_no_room(app, login, world):
    with app.app_context():
        integration_id = add_application_integration(world.a, auth_mode="delegated", object_id=world.a.object)
        link = CalendarLink(integration_id=integration_id, mailbox="me", object_id=world.a.object)
        db.session.add(link)
        db.session.commit()
        link_id = link.id
    client = login(world.a.admin)
    base = f"/orgs/{world.a.org}/integrations/{integration_id}"
    assert client.post(f"{base}/rooms/{link_id}/remove").status_code == 400
    assert client.post(f"{base}/rooms", data={"upn": "r@alpha.example", "object_id": world.a.object}).status_code == 400
    page = client.get(base).get_data(as_text=True)
    assert "Own calendar of" in page and "Add a room" not in page


def test_the_integration_page_links_to_the_room_table_which_offers_the_room_form(app, login, world, rooms):
    client = login(world.a.admin)
    status = client.get(rooms.base).get_data(as_text=True)
    assert "Test connection" in status and "6 room mailbox(es), 1 disabled." in status
    assert f'href="{rooms.base}/rooms"' in status
    page = client.get(rooms.base + "/rooms").get_data(as_text=True)
    assert "Add a room" in page and "room-off@alpha.example" in page
    assert f'<option value="{world.a.object}">Room A</option>' in page
    assert "Room B" not in page


# --- Isolation ---------------------------------------------------------------------------


def test_an_admin_gets_404_on_the_new_routes_of_another_organisation(app, login, world, mocked):
    with app.app_context():
        b_rooms = add_application_integration(world.b, [("room-b@beta.example", True)], name="Beta rooms")
        b_delegated = add_application_integration(
            world.b, auth_mode="delegated", object_id=world.b.object, name="Beta calendar"
        )
        b_link = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.integration_id == b_rooms))
        b_object_count = db.session.scalar(db.select(db.func.count()).select_from(BookableObject))
    client = login(world.a.admin)
    for org in (world.b.org, world.a.org):  # B's own paths, and B's ids under A's path
        rooms_base = f"/orgs/{org}/integrations/{b_rooms}"
        delegated_base = f"/orgs/{org}/integrations/{b_delegated}"
        attempts = [
            ("post", delegated_base + "/connect", None),
            ("post", delegated_base + "/disconnect", None),
            ("post", rooms_base + "/disconnect", None),
            ("post", rooms_base + "/test", None),
            ("get", rooms_base + "/test", None),
            ("post", rooms_base + "/rooms", {"upn": "planted@beta.example", "object_id": world.b.object}),
            ("get", f"{rooms_base}/rooms/{b_link}/remove", None),
            ("post", f"{rooms_base}/rooms/{b_link}/remove", None),
        ]
        for method, path, data in attempts:
            response = getattr(client, method)(path, data=data)
            assert response.status_code == 404, (method, path)
            assert "Beta" not in response.get_data(as_text=True), path
    assert len(mocked.calls) == 0
    with app.app_context():
        assert db.session.get(CalendarLink, b_link) is not None
        assert (
            db.session.scalar(
                db.select(db.func.count())
                .select_from(CalendarLink)
                .where(CalendarLink.mailbox == "planted@beta.example")
            )
            == 0
        )
        assert db.session.scalar(db.select(db.func.count()).select_from(BookableObject)) == b_object_count


def test_support_reaches_the_new_routes_of_every_organisation(app, login, world, mocked):
    with app.app_context():
        integration_id = add_application_integration(world.b)
    mocked.add(responses.POST, TOKEN_URL, json=APP_TOKEN)
    page = connection_tested(app, login(world.support), f"/orgs/{world.b.org}/integrations/{integration_id}")
    assert "The app got a token from Microsoft." in page.get_data(as_text=True)


# --- The mailbox path --------------------------------------------------------------------


@pytest.mark.parametrize(
    "mailbox, path",
    [
        ("me", "me"),
        ("room-1@contoso.com", "users/room-1@contoso.com"),
        ("o'brien.room@contoso.com", "users/o%27brien.room@contoso.com"),
        ("odd/room?x#y@contoso.com", "users/odd%2Froom%3Fx%23y@contoso.com"),
    ],
)
def test_the_mailbox_path_of_a_link(mailbox, path):
    assert mailbox_path(CalendarLink(mailbox=mailbox)) == path
