"""Every main page of the portal in a real browser: it fits a phone, passes axe, and keeps its buttons in sight.

New pages go into MAIN_PAGES: (name, who signs in, path built from the seeded ids).
"""

import pytest

from tests.browser import (
    DESKTOP,
    PHONE,
    browser_app,
    browser_page,
    needs_chromium,
    serious_accessibility_violations,
    served,
    sideways_overflow,
    sign_in,
)
from tests.portal_seed import ADMIN, SUPPORT, seed_portal

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """The seeded portal on a free local port, CSRF on as in production, over a SQLite file."""
    folder = tmp_path_factory.mktemp("frame")
    app = browser_app(folder, "frame.db")
    with app.app_context():
        ids = seed_portal()
    with served(app) as base:
        yield base, ids


def test_the_retry_button_of_a_failed_job_is_on_screen_at_desktop_width(portal):
    base, ids = portal
    with browser_page(viewport=DESKTOP) as page:
        sign_in(page, base, ADMIN)
        page.goto(f"{base}/orgs/{ids.org}/integrations/{ids.rooms}")
        retry = page.locator("#failed-heading ~ .table-wrap").get_by_role("button", name="Retry")
        box = retry.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= DESKTOP["width"]


# (name, who signs in or None, path from the seeded ids). Add a page here and it is checked everywhere below.
MAIN_PAGES = [
    ("login", None, lambda ids: "/login"),
    ("support landing", SUPPORT, lambda ids: "/"),
    ("organisation list", SUPPORT, lambda ids: "/orgs"),
    ("new organisation", SUPPORT, lambda ids: "/orgs/new"),
    ("organisation", ADMIN, lambda ids: f"/orgs/{ids.org}"),
    ("organisation form", ADMIN, lambda ids: f"/orgs/{ids.org}/edit"),
    ("bookings", ADMIN, lambda ids: f"/orgs/{ids.org}/bookings"),
    ("booking form", ADMIN, lambda ids: f"/orgs/{ids.org}/bookings/{ids.booking}/edit"),
    ("objects", ADMIN, lambda ids: f"/orgs/{ids.org}/objects"),
    ("object form", ADMIN, lambda ids: f"/orgs/{ids.org}/objects/{ids.object}/edit"),
    ("customers", ADMIN, lambda ids: f"/orgs/{ids.org}/customers"),
    ("statuses", ADMIN, lambda ids: f"/orgs/{ids.org}/statuses"),
    ("integration list", ADMIN, lambda ids: f"/orgs/{ids.org}/integrations"),
    ("rooms integration", ADMIN, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}"),
    ("calendar integration", SUPPORT, lambda ids: f"/orgs/{ids.org}/integrations/{ids.calendar}"),
    ("room table", SUPPORT, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/rooms"),
    ("room form", ADMIN, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/rooms/{ids.failing_link}/edit"),
    ("sync log", SUPPORT, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/log"),
    ("settings form", ADMIN, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/edit"),
    ("new integration", ADMIN, lambda ids: f"/orgs/{ids.org}/integrations/new"),
    ("integration audit log", ADMIN, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/audit"),
    ("organisation audit log", ADMIN, lambda ids: f"/orgs/{ids.org}/audit"),
    ("room discovery", ADMIN, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/rooms/discover"),
    ("room paste", ADMIN, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/rooms/paste"),
    ("support overview", SUPPORT, lambda ids: "/support/integrations"),
    ("all incidents", SUPPORT, lambda ids: "/incidents"),
    ("organisation incidents", ADMIN, lambda ids: f"/orgs/{ids.org}/incidents"),
    ("API tokens", ADMIN, lambda ids: f"/orgs/{ids.org}/api-tokens"),
    ("new API token", ADMIN, lambda ids: f"/orgs/{ids.org}/api-tokens/new"),
    ("bookings week", ADMIN, lambda ids: f"/orgs/{ids.org}/bookings?span=week"),
    ("bookings table", ADMIN, lambda ids: f"/orgs/{ids.org}/bookings?view=table"),
    ("room bookings", ADMIN, lambda ids: f"/orgs/{ids.org}/rooms/{ids.healthy_link}"),
    (
        "full sync of a room",
        ADMIN,
        lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/rooms/{ids.healthy_link}/full-sync",
    ),
    ("full sync", SUPPORT, lambda ids: f"/orgs/{ids.org}/integrations/{ids.rooms}/full-sync"),
    ("people", SUPPORT, lambda ids: "/people"),
    ("new account", SUPPORT, lambda ids: "/people/new"),
    ("organisation people", ADMIN, lambda ids: f"/orgs/{ids.org}/people"),
    ("change password", ADMIN, lambda ids: "/account/password"),
    ("not found", ADMIN, lambda ids: "/orgs/999999"),
]


def _open_as(page, base, who, path, signed_in):
    if who is not None and signed_in.get("as") != who:
        page.context.clear_cookies()
        sign_in(page, base, who)
        signed_in["as"] = who
    response = page.goto(base + path)
    page.wait_for_load_state()
    return response


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_main_page_fits_the_screen_and_passes_the_accessibility_check(portal, viewport):
    base, ids = portal
    problems = {}
    signed_in = {}
    with browser_page(viewport=viewport) as page:
        for name, who, path in MAIN_PAGES:
            if who is None:
                page.context.clear_cookies()
                signed_in.clear()
            response = _open_as(page, base, who, path(ids), signed_in)
            expected = 404 if name == "not found" else 200
            found = []
            if response.status != expected:
                found.append(f"answered {response.status}")
            if page.locator("main#content").count() != 1:
                found.append("no <main id=content>")
            if viewport is PHONE and (overflow := sideways_overflow(page)):
                found.append(f"{overflow}px wider than the phone")
            found += serious_accessibility_violations(page)
            if found:
                problems[name] = found
    assert problems == {}


def test_the_main_navigation_stays_on_one_line_at_desktop_width_and_wraps_on_a_phone(portal):
    base, ids = portal
    path = f"/orgs/{ids.org}/integrations/{ids.rooms}/rooms"
    tops = (
        "() => [...document.querySelectorAll('.topbar .mainnav li, .topbar .brand, .topbar .account > summary')]"
        ".map((e) => Math.round(e.getBoundingClientRect().top + e.getBoundingClientRect().height / 2))"
    )
    with browser_page(viewport=DESKTOP) as page:
        sign_in(page, base, SUPPORT)
        page.goto(base + path)
        assert len(set(page.evaluate(tops))) == 1
        last_link, account = page.evaluate(
            "() => [[...document.querySelectorAll('.mainnav li')].pop().getBoundingClientRect().right,"
            " document.querySelector('.account').getBoundingClientRect().left]"
        )
        assert last_link <= account
        assert (
            page.get_by_role("navigation", name="Main")
            .get_by_role("link", name="Integrations", exact=True)
            .get_attribute("aria-current")
            == "page"
        )
    with browser_page(viewport=PHONE) as page:
        sign_in(page, base, SUPPORT)
        page.goto(base + path)
        assert len(set(page.evaluate(tops))) > 1
        assert sideways_overflow(page) == 0


def test_the_skip_link_is_the_first_stop_and_shows_a_focus_ring(portal):
    base, ids = portal
    with browser_page(viewport=DESKTOP) as page:
        sign_in(page, base, ADMIN)
        page.goto(f"{base}/orgs/{ids.org}")
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement, s = getComputedStyle(e);"
            " return [e.textContent.trim(), s.outlineStyle, parseFloat(s.outlineWidth),"
            " e.getBoundingClientRect().top]; }"
        )
        assert focused[0] == "Skip to content"
        assert focused[1] == "solid" and focused[2] >= 2
        assert focused[3] >= 0
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "content"
