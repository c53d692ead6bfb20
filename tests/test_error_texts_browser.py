"""A room's error in a real browser, scripts off: the sentence shows, the raw code waits behind the disclosure."""

import pytest

from app import create_app
from app.extensions import db
from app.models import BookableObject, CalendarLink, Integration
from app.models.organisation import ROLE_ADMIN
from app.orgs.provisioning import create_organisation
from tests.browser import (
    PHONE,
    browser_page,
    needs_chromium,
    serious_accessibility_violations,
    served,
    sideways_overflow,
    sign_in,
)
from tests.conftest import add_user, config_for

ADMIN = "admin@alpha.example"
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
    config = config_for(f"sqlite:///{tmp_path / 'browser.db'}", WTF_CSRF_ENABLED=True)
    app = create_app(config, instance_path=str(tmp_path / "instance"))
    with app.app_context():
        db.create_all()
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
            connection_state="connected",
        )
        db.session.add_all([room, integration])
        db.session.flush()
        db.session.add(
            CalendarLink(
                integration_id=integration.id,
                object_id=room.id,
                mailbox="board-room-with-a-long-address@alpha.example",
                last_sync_status="error",
                last_sync_error=DENIED,
            )
        )
        db.session.commit()
        rooms_url = f"/orgs/{organisation.id}/integrations/{integration.id}/rooms"
    with served(app) as base:
        yield base, rooms_url


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
