"""A full sync in a real browser, scripts off: from the room table's row, confirmed, run, its progress seen."""

import json
import re

import pytest
import responses

from app import clock
from app.extensions import db
from app.models import BookableObject, CalendarLink
from app.models.organisation import ROLE_ADMIN
from app.orgs.provisioning import create_organisation
from tests.admin_helpers import TENANT, add_rooms_integration, run_queued_jobs
from tests.browser import (
    PHONE,
    browser_app,
    browser_page,
    needs_chromium,
    serious_accessibility_violations,
    served,
    sideways_overflow,
    sign_in,
)
from tests.conftest import add_user
from tests.sync_helpers import GRAPH, at, event, page

ADMIN = "admin@alpha.example"
ROOM = "board-room@contoso.example"
VIEW = f"{GRAPH}/users/{ROOM}/calendarView/delta"
PAGE_2 = f"{VIEW}?$skiptoken=page-2"
APP_TOKEN_URL = f"https://login.test/{TENANT}/oauth2/v2.0/token"
APP_TOKEN = {"token_type": "Bearer", "expires_in": 3599, "access_token": "app-only-access-token-FULL-7q"}

pytestmark = needs_chromium


@pytest.fixture
def portal(tmp_path):
    """The portal with CSRF on over a SQLite file, and one connected room integration."""
    app = browser_app(tmp_path)
    with app.app_context():
        organisation = create_organisation("Alpha Rooms")
        add_user(ADMIN, ROLE_ADMIN, organisation.id)
        board_room = BookableObject(organisation_id=organisation.id, name="Board room")
        db.session.add(board_room)
        db.session.commit()
        owner = type("Owner", (), {"org": organisation.id, "object": board_room.id})
        rooms = add_rooms_integration(owner, [ROOM])
    with served(app) as base:
        yield app, base, rooms


def _is_problem(message):
    # The browser asks for a favicon by itself; its 404 is not the page's fault.
    return message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")


def progress_text(page):
    return re.sub(r"\s+", " ", page.locator("#full-sync").inner_text()).strip()


def test_a_full_sync_is_confirmed_run_and_its_progress_shown(portal):
    app, base, rooms = portal
    with browser_page() as browser:
        sign_in(browser, base, ADMIN)
        browser.goto(base + rooms.base + "/rooms")
        browser.get_by_role("link", name=f"Full sync… {ROOM}").click()

        browser.get_by_role("heading", name=f"Full sync of {ROOM}?").wait_for()
        assert browser.get_by_role("heading", name="Nothing is lost").is_visible()
        assert serious_accessibility_violations(browser) == []
        browser.get_by_role("button", name="Start full sync").click()

        browser.get_by_text(f"Full sync of {ROOM} queued").wait_for()
        assert browser.url == base + rooms.base

        seen_mid_run = []

        def second_page(request):
            # The first page is committed: the status page, reloaded now, shows the run in progress.
            browser.reload()
            seen_mid_run.append(progress_text(browser))
            seen_mid_run.append(serious_accessibility_violations(browser))
            return 200, {}, json.dumps(page([event("e3", at(11, 9), at(11, 10))], delta_link=f"{VIEW}?$deltatoken=1"))

        first = [event("e1", at(10, 9), at(10, 10)), event("e2", at(10, 11), at(10, 12))]
        with app.app_context(), responses.RequestsMock() as graph:
            graph.add(responses.POST, APP_TOKEN_URL, json=APP_TOKEN)
            # Registered in the order they are asked for: the first page's URL carries the window's query.
            graph.add(responses.GET, VIEW, json=page(first, next_link=PAGE_2))
            graph.add_callback(responses.GET, PAGE_2, callback=second_page)
            assert run_queued_jobs("sync_link") == {("sync_link", str(rooms.links[ROOM])): "done"}

        running, violations = seen_mid_run
        line = rf"Full sync running for {re.escape(ROOM)}: 1 page read, 2 appointments seen, last page \d\d:\d\d:\d\d\."
        assert re.match(line, running)
        assert violations == []

        browser.reload()
        finished = progress_text(browser)
        line = rf"Last full sync \({re.escape(ROOM)}\) finished at \d{{4}}-\d\d-\d\d \d\d:\d\d \(3 appointments\)\."
        assert re.match(line, finished)
        assert serious_accessibility_violations(browser) == []

    with browser_page(viewport=PHONE) as phone:
        sign_in(phone, base, ADMIN)
        for path in ("", "/full-sync", f"/rooms/{rooms.links[ROOM]}/full-sync"):
            phone.goto(base + rooms.base + path)
            assert sideways_overflow(phone) == 0, path


def test_with_scripts_on_the_progress_line_refreshes_itself(portal):
    app, base, rooms = portal
    link_id = rooms.links[ROOM]
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        link.full_sync_started_at = link.full_sync_last_page_at = clock.utcnow()
        link.full_sync_pages, link.full_sync_appointments = 1, 100
        db.session.commit()
    with browser_page(scripts=True) as browser:
        problems = []
        browser.on("pageerror", lambda error: problems.append(str(error)))
        browser.on("console", lambda message: _is_problem(message) and problems.append(message.text))
        sign_in(browser, base, ADMIN)
        browser.goto(base + rooms.base)
        assert progress_text(browser).startswith(f"Full sync running for {ROOM}: 1 page read, 100 appointments seen")

        with app.app_context():
            link = db.session.get(CalendarLink, link_id)
            link.full_sync_started_at, link.full_sync_finished_at = None, clock.utcnow()
            link.full_sync_pages, link.full_sync_appointments = 2, 150
            db.session.commit()

        browser.get_by_text(f"Last full sync ({ROOM}) finished at").wait_for()
        assert "(150 appointments)" in progress_text(browser)
        assert problems == []
