"""People management in a real browser, scripts off: support creates an account, hands over
the set-password link, and its owner sets a password and is signed in."""

import pytest

from app.extensions import db
from app.models.organisation import ROLE_SUPPORT
from app.orgs.provisioning import create_organisation
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

SUPPORT = "support@ireserve.example"
NEW_ADMIN = "facility.manager@alpha.example"
NEW_PASSWORD = "meeting rooms all day"

pytestmark = needs_chromium


@pytest.fixture
def portal(tmp_path):
    """The portal on a free local port, with CSRF on as in production, over a fresh SQLite file."""
    app = browser_app(tmp_path)
    with app.app_context():
        create_organisation("Alpha Rooms")
        add_user(SUPPORT, ROLE_SUPPORT)
        db.session.commit()
    with served(app) as base:
        # Links are built from PUBLIC_BASE_URL; here that is the served portal.
        app.config["PUBLIC_BASE_URL"] = base
        yield app, base


def violations_of_this_answer(page):
    """axe on the page as shown, for an answer to a POST that opening its URL again would not repeat."""
    html = page.content()
    scratch = page.context.browser.new_context(viewport=page.viewport_size, java_script_enabled=True)
    try:
        target = scratch.new_page()
        target.goto(page.url.split("/people")[0] + "/login")
        target.set_content(html)
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(target)
    finally:
        scratch.close()
    return [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_support_creates_an_account_whose_owner_sets_a_password_from_the_link(portal, viewport):
    app, base = portal
    options = {"viewport": viewport} if viewport else {}
    with browser_page(**options) as page:
        sign_in(page, base, SUPPORT)
        page.goto(base + "/people")
        assert serious_accessibility_violations(page) == []
        assert sideways_overflow(page) == 0
        page.get_by_role("link", name="New account").click()
        assert serious_accessibility_violations(page) == []
        assert sideways_overflow(page) == 0

        page.get_by_label("E-mail address").fill(NEW_ADMIN)
        page.get_by_label("Admin of one organisation").check()
        page.get_by_label("Organisation", exact=True).select_option(label="Alpha Rooms")
        page.get_by_role("button", name="Create account").click()

        assert page.get_by_role("heading", name=f"Account {NEW_ADMIN} created").is_visible()
        link = page.locator("#set-password-link").inner_text().strip()
        assert link.startswith(base + "/set-password/")
        assert violations_of_this_answer(page) == []
        assert sideways_overflow(page) == 0

        page.goto(base + "/people")
        row = page.locator("table.people tbody tr", has_text=NEW_ADMIN)
        assert "invited" in row.inner_text()

    with browser_page(**options) as newcomer:
        newcomer.goto(link)
        assert newcomer.get_by_text(NEW_ADMIN).is_visible()
        assert serious_accessibility_violations(newcomer) == []
        assert sideways_overflow(newcomer) == 0
        newcomer.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
        newcomer.get_by_label("Password again").fill(NEW_PASSWORD)
        newcomer.get_by_role("button", name="Set password").click()
        assert newcomer.get_by_text("Your password is set and you are signed in.").is_visible()
        newcomer.locator(".account > summary").click()
        assert NEW_ADMIN in newcomer.locator("header").inner_text()

        newcomer.get_by_role("button", name="Sign out").click()
        sign_in(newcomer, base, NEW_ADMIN, NEW_PASSWORD)
        newcomer.locator(".account > summary").click()
        assert NEW_ADMIN in newcomer.locator("header").inner_text()

        newcomer.goto(base + "/account/password")
        assert serious_accessibility_violations(newcomer) == []
        assert sideways_overflow(newcomer) == 0
        newcomer.goto(base + "/people")
        assert newcomer.get_by_role("heading", name="People of Alpha Rooms").is_visible()
        assert serious_accessibility_violations(newcomer) == []
        assert sideways_overflow(newcomer) == 0

        newcomer.goto(link)
        assert newcomer.get_by_text("This link has been used or replaced by a newer one.").is_visible()
