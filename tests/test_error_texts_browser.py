"""A room's error in a real browser, scripts off: the sentence shows, the raw code waits behind the disclosure."""

import pytest

from app import clock
from app.connection import check, reports
from app.extensions import db
from app.models import BookableObject, CalendarLink, Integration, Job, SyncLogEntry
from app.models.integration_report import REPORT_CONNECTION_TEST
from app.models.job import JOB_FAILED
from app.models.organisation import ROLE_ADMIN, ROLE_SUPPORT
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
SUPPORT = "support@ireserve.example"
DENIED = (
    "Graph 403 ErrorAccessDenied: Access to OData is disabled. "
    "(GET https://graph.microsoft.com/v1.0/users/board-room-with-a-long-address@alpha.example/calendar/events"
    "/delta; request-id 5d1f7a2e-0b1c-4e7a-9a61-0c2f3d4e5f60)"
)
SENTENCE = "Access denied: the tenant's application access policy or RBAC scope excludes this mailbox."

pytestmark = needs_chromium


@pytest.fixture
def portal(tmp_path):
    """The portal with CSRF on, over a fresh SQLite file, with one room whose last sync was refused."""
    app = browser_app(tmp_path)
    with app.app_context():
        organisation = create_organisation("Alpha Rooms")
        add_user(ADMIN, ROLE_ADMIN, organisation.id)
        room = BookableObject(organisation_id=organisation.id, name="Board room")
        integration = Integration(
            organisation_id=organisation.id,
            name="Meeting rooms",
            auth_mode="application",
            tenant_id="11111111-2222-3333-4444-555555555555",
            client_id="66666666-7777-8888-9999-000000000000",
            client_secret="app-client-secret-K9x%",
            connection_state="needs_reconnect",
            connection_error="The client secret has expired (AADSTS7000222)",
        )
        db.session.add_all([room, integration])
        db.session.flush()
        link = CalendarLink(
            integration_id=integration.id,
            object_id=room.id,
            mailbox="board-room-with-a-long-address@alpha.example",
            last_sync_status="error",
            last_sync_error=DENIED,
        )
        db.session.add(link)
        db.session.flush()
        _record_failures(organisation, integration, link)
        add_user(SUPPORT, ROLE_SUPPORT)
        db.session.commit()
        integration_url = f"/orgs/{organisation.id}/integrations/{integration.id}"
    with served(app) as base:
        yield base, integration_url + "/rooms"


def _record_failures(organisation, integration, link):
    """A parked job, a sync log error line and a connection test that found the room denied."""
    db.session.add(
        Job(
            kind="sync_link",
            key=str(link.id),
            state=JOB_FAILED,
            run_at=clock.utcnow(),
            failed_at=clock.utcnow(),
            created_at=clock.utcnow(),
            attempts=8,
            last_error="GraphForbidden: " + DENIED,
        )
    )
    db.session.add(
        SyncLogEntry(
            organisation_id=organisation.id,
            integration_id=integration.id,
            link_id=link.id,
            action="error",
            reason=DENIED,
            is_error=True,
        )
    )
    check.queue_connection_test(integration)
    verdict = check.RoomVerdict(link.mailbox, "Board room", check.OUTCOME_ACCESS_DENIED, DENIED)
    reports.store_result(integration.id, REPORT_CONNECTION_TEST, 1, check.ConnectionReport(rooms=[verdict]).to_dict())
    db.session.execute(db.delete(Job).where(Job.kind == check.CONNECTION_TEST))


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_a_room_error_reads_as_a_sentence_with_the_code_behind_the_disclosure(portal, viewport):
    base, rooms_url = portal
    with browser_page(**({"viewport": viewport} if viewport else {})) as page:
        sign_in(page, base, ADMIN)
        page.goto(base + rooms_url)
        cell = page.locator("td.error-cell")
        assert cell.get_by_text(SENTENCE).is_visible()
        assert cell.get_by_text("Ask the Exchange administrator").is_visible()
        code = cell.get_by_text("ErrorAccessDenied", exact=True)
        request_id = cell.get_by_text("5d1f7a2e-0b1c-4e7a-9a61-0c2f3d4e5f60", exact=True)
        assert not code.is_visible() and not request_id.is_visible()

        cell.get_by_text("Details for support").click()
        assert code.is_visible() and request_id.is_visible()
        assert serious_accessibility_violations(page) == []
        if viewport == PHONE:
            assert sideways_overflow(page) == 0


@pytest.mark.parametrize(
    "who, path, heading",
    [
        (ADMIN, "", "Failed jobs"),
        (ADMIN, "/log", "Sync log"),
        (ADMIN, "/test", "Connection test"),
        (SUPPORT, "/support/integrations", "Integrations overview"),
    ],
    ids=["status", "sync-log", "connection-test", "support-overview"],
)
def test_every_page_with_explained_errors_is_accessible_and_fits_a_phone(portal, who, path, heading):
    base, rooms_url = portal
    url = base + (path if path.startswith("/support") else rooms_url.removesuffix("/rooms") + path)
    with browser_page(viewport=PHONE) as page:
        sign_in(page, base, who)
        page.goto(url)
        assert page.get_by_text(heading).first.is_visible()
        first = page.locator(".error-explained").first
        assert first.locator(".error-sentence").is_visible()
        assert not first.locator("details dl").is_visible()
        assert sideways_overflow(page) == 0
        assert serious_accessibility_violations(page) == []
