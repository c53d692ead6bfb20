"""The settings form in a real browser: the method's fields without scripts (a button) and with them (at once),
and an error summary that takes focus."""

import pytest

from app.extensions import db
from app.models import BookableObject, Integration
from app.models.organisation import ROLE_ADMIN
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

ADMIN = "admin@alpha.example"

pytestmark = needs_chromium


@pytest.fixture
def portal(tmp_path):
    """The portal on a free local port, with CSRF on as in production, over a fresh SQLite file."""
    app = browser_app(tmp_path)
    with app.app_context():
        organisation = create_organisation("Alpha Rooms")
        add_user(ADMIN, ROLE_ADMIN, organisation.id)
        db.session.add(BookableObject(organisation_id=organisation.id, name="Board room"))
        db.session.commit()
        org_id = organisation.id
    with served(app) as base:
        yield app, base, f"{base}/orgs/{org_id}/integrations/new"


def integrations(app):
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Integration))


def fill_connection(page):
    page.get_by_label("Name").fill("Meeting rooms")
    page.get_by_label("Tenant id").fill("contoso.onmicrosoft.com")
    page.get_by_label("Client id").fill("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_without_scripts_the_button_shows_the_other_methods_fields_and_keeps_what_was_typed(portal, viewport):
    app, base, new_form = portal
    with browser_page(**({"viewport": viewport} if viewport else {})) as page:
        sign_in(page, base, ADMIN)
        page.goto(new_form)
        assert page.get_by_label("Object").is_visible()
        assert not page.locator("#application-rooms").is_visible()
        fill_connection(page)
        page.get_by_role("group", name="Lock statuses").get_by_label("Invoiced").check()
        page.get_by_label("Days in the past").fill("14")
        page.get_by_label("Application: room and resource mailboxes").check()

        page.get_by_role("button", name="Show the fields of this method").click()
        page.wait_for_load_state()

        assert page.locator("#application-rooms").is_visible()
        assert not page.get_by_label("Object").is_visible()
        assert not page.get_by_label("Teams meeting").is_visible()
        assert page.get_by_label("Name").input_value() == "Meeting rooms"
        assert page.get_by_label("Tenant id").input_value() == "contoso.onmicrosoft.com"
        assert page.get_by_label("Days in the past").input_value() == "14"
        assert page.get_by_label("Application: room and resource mailboxes").is_checked()
        assert page.get_by_role("group", name="Lock statuses").get_by_label("Invoiced").is_checked()
        assert page.locator(".error").count() == 0
        assert integrations(app) == 0
        assert sideways_overflow(page) == 0
        assert serious_accessibility_violations(page) == []

        page.get_by_label("Client secret").fill("app-secret-from-azure")
        page.get_by_label("Client secret").press("Enter")  # saves, as the Save button does
        page.get_by_text("Integration Meeting rooms saved.").wait_for()
        with app.app_context():
            integration = db.session.scalar(db.select(Integration))
            assert (integration.auth_mode, integration.window_past_days) == ("application", 14)
            assert [s.name for s in integration.lock_statuses] == ["Invoiced"]
            assert integration.object_id is None


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_with_scripts_the_groups_follow_the_method_at_once_and_the_error_summary_takes_focus(portal, viewport):
    app, base, new_form = portal
    with browser_page(scripts=True, **({"viewport": viewport} if viewport else {})) as page:
        problems = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        sign_in(page, base, ADMIN)
        page.goto(new_form)
        assert page.get_by_role("button", name="Show the fields of this method").count() == 0
        page.evaluate("() => { window.notReloaded = true; }")

        page.get_by_label("Application: room and resource mailboxes").check()
        assert not page.get_by_label("Object").is_visible()
        assert page.locator("#application-rooms").is_visible()
        page.get_by_label("Delegated: one personal or shared calendar").check()
        assert page.get_by_label("Object").is_visible()
        assert page.get_by_role("group", name="Create calendar entry statuses").is_visible()
        assert not page.locator("#application-rooms").is_visible()
        assert page.evaluate("() => window.notReloaded") is True

        fill_connection(page)
        page.get_by_label("Tenant id").fill("common")
        page.get_by_role("button", name="Save").click()
        page.wait_for_load_state()

        summary = page.locator("#error-summary")
        summary.wait_for()
        assert page.evaluate("() => document.activeElement.id") == "error-summary"
        assert "There is a problem" in summary.inner_text()
        summary.get_by_role("link", name="Tenant id").click()
        assert page.evaluate("() => document.activeElement.id") == "tenant_id"
        summary.get_by_role("link", name="Object").click()
        assert page.evaluate("() => document.activeElement.id") == "object_id"
        assert page.get_by_label("Tenant id").get_attribute("aria-invalid") == "true"
        assert integrations(app) == 0
        assert sideways_overflow(page) == 0
        assert serious_accessibility_violations(page) == []
        assert problems == []
