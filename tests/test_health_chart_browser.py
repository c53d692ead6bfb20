"""The sync health chart and the overview's sparklines in a real browser, scripts off, at desktop and phone size."""

from datetime import timedelta
from types import SimpleNamespace

import pytest

from app import clock
from app.extensions import db
from app.metrics import hourly
from app.models import BookableObject
from app.models.organisation import ROLE_ADMIN, ROLE_SUPPORT
from app.orgs.provisioning import create_organisation
from tests.admin_helpers import add_rooms_integration
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
SUPPORT = "support@ireserve.example"

pytestmark = needs_chromium


@pytest.fixture
def portal(tmp_path):
    """An organisation in Amsterdam time whose rooms integration had a busy week, with CSRF on, over SQLite."""
    app = browser_app(tmp_path)
    with app.app_context():
        organisation = create_organisation("Alpha Rooms", timezone="Europe/Amsterdam")
        add_user(ADMIN, ROLE_ADMIN, organisation.id)
        add_user(SUPPORT, ROLE_SUPPORT)
        room = BookableObject(organisation_id=organisation.id, name="Board room")
        db.session.add(room)
        db.session.flush()
        owner = SimpleNamespace(org=organisation.id, object=room.id)
        integration = add_rooms_integration(owner, ["board@alpha.example"], name="Rooms")
        now = clock.utcnow()
        for hours_ago in range(0, 7 * 24, 5):
            hourly.count(
                integration.id,
                now=now - timedelta(hours=hours_ago),
                syncs_ok=hours_ago % 7 + 1,
                syncs_failed=1 if hours_ago % 11 == 0 else 0,
                notifications=hours_ago % 4,
                bookings_created=hours_ago % 3,
                bookings_updated=1,
            )
        db.session.commit()
        status_url = integration.base
    with served(app) as base:
        yield base, status_url


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_the_status_page_shows_the_chart_within_the_screen_and_accessibly(portal, viewport):
    base, status_url = portal
    with browser_page(**({"viewport": viewport} if viewport else {})) as page:
        sign_in(page, base, ADMIN)
        page.goto(base + status_url)

        chart = page.locator("svg.health-svg")
        assert chart.is_visible()
        box = chart.bounding_box()
        window_width = page.viewport_size["width"]
        assert 0 < box["width"] <= window_width
        # Drawn, not blank: bars of the busy hours have height on screen.
        assert page.locator("svg.health-svg rect.bar-ok[height]:not([height='0'])").count() > 0
        assert page.get_by_text("Hours in Europe/Amsterdam.").is_visible()
        page.get_by_text("The numbers by day").click()
        assert page.locator("#health-table").is_visible()
        assert serious_accessibility_violations(page) == []
        if viewport == PHONE:
            assert sideways_overflow(page) == 0


def test_the_support_overview_shows_sparklines_without_sideways_scroll_on_a_phone(portal):
    base, _ = portal
    with browser_page(viewport=PHONE) as page:
        sign_in(page, base, SUPPORT)
        page.goto(base + "/support/integrations")
        assert page.locator("svg.sparkline path.spark-ok").count() == 1
        assert serious_accessibility_violations(page) == []
        assert sideways_overflow(page) == 0
