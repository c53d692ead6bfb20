"""The admin portal in a real browser, scripts off: settings, bulk paste with its preview, the room table.

Drives Debian's chromium (see tests/browser.py) against the real portal served from a thread.
"""

import pytest

from app.extensions import db
from app.models import BookableObject, CalendarLink, Integration
from app.models.organisation import ROLE_ADMIN
from app.orgs.provisioning import create_organisation
from tests.browser import CHROMIUM, CHROMIUM_ARGS, browser_app, browser_page, needs_chromium, served
from tests.conftest import PASSWORD, add_user

ADMIN = "admin@alpha.example"

pytestmark = needs_chromium


@pytest.fixture
def portal(tmp_path):
    """The portal on a free local port, with CSRF on as in production, over a fresh SQLite file."""
    app = browser_app(tmp_path)
    with app.app_context():
        organisation = create_organisation("Alpha Rooms")
        add_user(ADMIN, ROLE_ADMIN, organisation.id)
        db.session.add_all(
            [BookableObject(organisation_id=organisation.id, name=name) for name in ("Board room", "Hall")]
        )
        db.session.commit()
    with served(app) as base:
        yield app, base


@pytest.fixture
def page():
    with browser_page() as page:
        yield page


@pytest.fixture
def scripted_page(portal):
    """A page with scripts on that records every console error, script error and CSP violation."""
    sync_api = pytest.importorskip("playwright.sync_api")
    _, base = portal
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
            # Injected by the browser driver, so the portal's CSP does not stop this listener.
            context.add_init_script(
                "window.cspViolations = [];"
                "document.addEventListener('securitypolicyviolation',"
                " (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.problems = []
            page.on("console", lambda message: _is_problem(message) and page.problems.append(message.text))
            page.on("pageerror", lambda error: page.problems.append(str(error)))
            yield page
        finally:
            browser.close()


def _is_problem(message):
    # The portal has no favicon; the browser's unasked-for request for one is no fault.
    return message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")


def test_the_copy_buttons_work_under_the_content_security_policy(portal, scripted_page):
    app, base = portal
    page = scripted_page
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Integrations").first.click()
    page.get_by_role("link", name="New integration").click()

    notification_url = page.locator("#notification-url").inner_text().strip()
    button = page.locator('button[data-copy="notification-url"]')
    button.click()

    page.wait_for_function("(button) => button.textContent === 'Copied'", arg=button.element_handle())
    assert page.evaluate("() => navigator.clipboard.readText()") == notification_url
    assert notification_url.endswith("/webhooks/graph")
    assert page.evaluate("() => window.cspViolations") == []
    assert page.problems == []


def room_links(app):
    with app.app_context():
        return sorted(db.session.execute(db.select(CalendarLink.mailbox, CalendarLink.enabled)).all())


def test_an_admin_configures_rooms_by_bulk_paste_in_a_browser(portal, page):
    app, base = portal

    page.goto(base + "/login")
    page.get_by_label("E-mail").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("link", name="Integrations").first.click()
    page.get_by_role("link", name="New integration").click()
    page.get_by_text("Which connection method?").wait_for()
    page.get_by_label("Name").fill("Meeting rooms")
    page.get_by_label("Application: room and resource mailboxes").check()
    page.get_by_label("Tenant id").fill("contoso.onmicrosoft.com")
    page.get_by_label("Client id").fill("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    page.get_by_label("Client secret").fill("app-secret-from-azure")
    page.get_by_label("Status for new bookings").select_option(label="Confirmed")
    page.get_by_role("group", name="Lock statuses").get_by_label("Invoiced").check()
    page.get_by_label("Days in the future").fill("200")
    page.get_by_role("button", name="Save").click()

    page.get_by_text("Integration Meeting rooms saved.").wait_for()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Meeting rooms")
    with app.app_context():
        integration = db.session.scalar(db.select(Integration))
        assert (integration.auth_mode, integration.window_future_days) == ("application", 200)
        assert [s.name for s in integration.lock_statuses] == ["Invoiced"]

    page.get_by_role("link", name="Paste a list of rooms").click()
    page.get_by_label("Rooms, one per line").fill(
        "upn,object\nroom-1@contoso.com,board room\nnot-an-address,Hall\nRoom-2@Contoso.com;Hall\n"
    )
    page.get_by_role("button", name="Preview").click()

    page.get_by_role("heading", name="Rejected lines").wait_for()
    rejected = page.locator("#rejected").inner_text()
    assert "not-an-address,Hall" in rejected and "is not an e-mail address." in rejected
    added = page.locator("#added").inner_text()
    assert "room-1@contoso.com" in added and "Board room" in added and "room-2@contoso.com" in added
    assert room_links(app) == []  # the preview writes nothing

    page.get_by_role("button", name="Apply: add 2, change 0").click()

    page.get_by_text("2 room(s) added, 0 changed").wait_for()
    rows = page.locator("table.rooms tbody tr")
    assert rows.count() == 2
    assert "room-1@contoso.com" in rows.nth(0).inner_text() and "Board room" in rows.nth(0).inner_text()
    assert "never synced" in rows.nth(1).inner_text()
    assert room_links(app) == [("room-1@contoso.com", True), ("room-2@contoso.com", True)]

    page.get_by_role("link", name="Status").first.click()
    assert "2 room mailbox(es)." in page.locator("#rooms-heading + p").inner_text()

    # On a phone the wide room table scrolls inside its wrapper; the page itself does not.
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(page.url + "/rooms")
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1]
    wrapper = page.evaluate(
        "() => { const w = document.querySelector('.table-wrap'); return [w.scrollWidth, w.clientWidth]; }"
    )
    assert wrapper[0] > wrapper[1]
