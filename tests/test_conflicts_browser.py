"""The *Not booked from Outlook* card in a real browser, scripts off: seen, tried again, gone once booked."""

from datetime import UTC, datetime

import pytest
import responses

from app.extensions import db
from app.models import BookableObject, Booking, BookingStatus, CalendarLink, Integration, SyncConflict
from app.models.organisation import ROLE_ADMIN
from app.orgs.provisioning import create_organisation
from tests.admin_helpers import CLIENT_ID, TENANT, run_queued_jobs
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
from tests.sync_helpers import GRAPH, event

pytestmark = needs_chromium

ADMIN = "admin@alpha.example"
ROOM = "board-room@alpha.example"
START = datetime(2030, 3, 4, 9, tzinfo=UTC)
END = datetime(2030, 3, 4, 10, tzinfo=UTC)
APP_TOKEN = {"token_type": "Bearer", "expires_in": 3599, "access_token": "app-only-access-token-BROWSER"}


@pytest.fixture
def portal(tmp_path):
    """An organisation whose board room refused one Outlook appointment for an overlap with booking `clash`."""
    app = browser_app(tmp_path)
    with app.app_context():
        organisation = create_organisation("Alpha Rooms")
        add_user(ADMIN, ROLE_ADMIN, organisation.id)
        room = BookableObject(organisation_id=organisation.id, name="Board room")
        db.session.add(room)
        db.session.flush()
        statuses = dict(
            db.session.execute(
                db.select(BookingStatus.name, BookingStatus.id).where(BookingStatus.organisation_id == organisation.id)
            ).all()
        )
        integration = Integration(
            organisation_id=organisation.id,
            name="Meeting rooms",
            auth_mode="application",
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret="app-client-secret-browser",
            connection_state="connected",
            new_booking_status_id=statuses["Option"],
            cancel_status_id=statuses["Cancelled"],
        )
        link = CalendarLink(integration=integration, mailbox=ROOM, object_id=room.id)
        clash = Booking(
            organisation_id=organisation.id,
            object_id=room.id,
            status_id=statuses["Confirmed"],
            start_at=START,
            end_at=END,
            remark="Quarterly review",
        )
        db.session.add_all([integration, link, clash])
        db.session.flush()
        db.session.add(
            SyncConflict(
                organisation_id=organisation.id,
                integration_id=integration.id,
                link_id=link.id,
                event_id="ev-clash",
                subject="Strategy offsite with a rather long subject that has to wrap on a phone",
                start_at=START,
                end_at=END,
                organiser_name="Ann Organiser",
                organiser_email="ann.organiser.with.a.long.address@alpha.example",
                booking_id=clash.id,
                reason="Not booked: Overlaps booking.",
            )
        )
        db.session.commit()
        ids = dict(org=organisation.id, integration=integration.id, clash=clash.id, cancelled=statuses["Cancelled"])
    with served(app) as base:
        yield app, base, ids


def status_url(base, ids):
    return f"{base}/orgs/{ids['org']}/integrations/{ids['integration']}"


def test_a_conflict_is_shown_and_tried_again_with_scripts_off(portal):
    app, base, ids = portal
    with browser_page() as page:
        sign_in(page, base, ADMIN)
        page.goto(status_url(base, ids))
        card = page.locator("#conflict-count")
        assert "1" in card.locator("strong").inner_text()
        item = page.locator("li.conflict")
        assert "Strategy offsite" in item.inner_text()
        assert "2030-03-04 10:00–11:00" in item.inner_text()  # Amsterdam, the organisation's zone
        assert (
            page.get_by_role("link", name=f"Booking {ids['clash']}")
            .get_attribute("href")
            .endswith(f"/bookings/{ids['clash']}/edit")
        )
        button = item.get_by_role("button", name="Try again")
        box = button.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280
        assert serious_accessibility_violations(page) == []

        # The clash is resolved in i-Reserve, then the admin tries again.
        with app.app_context():
            db.session.get(Booking, ids["clash"]).status_id = ids["cancelled"]
            db.session.commit()
        button.click()
        page.wait_for_load_state()
        assert "Trying again" in page.locator(".flash, [role=status], [role=alert]").first.inner_text()
        assert "Try again is queued" in page.locator("li.conflict").inner_text()

        with responses.RequestsMock() as mock, app.app_context():
            mock.post(f"https://login.test/{TENANT}/oauth2/v2.0/token", json=APP_TOKEN)
            mock.get(f"{GRAPH}/users/{ROOM}/events/ev-clash", json=event("ev-clash", START, END, subject="Strategy"))
            assert set(run_queued_jobs("retry_conflict").values()) == {"done"}
        page.goto(status_url(base, ids))
        assert page.locator("li.conflict").count() == 0
        assert "Every appointment read from Outlook has its booking" in page.locator("#conflicts").inner_text()


def test_the_conflict_list_fits_a_phone(portal):
    _, base, ids = portal
    with browser_page(viewport=PHONE) as page:
        sign_in(page, base, ADMIN)
        page.goto(status_url(base, ids))
        button = page.locator("li.conflict").get_by_role("button", name="Try again")
        box = button.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        assert sideways_overflow(page) == 0
        assert serious_accessibility_violations(page) == []
