"""The bookings timeline in a real browser, scripts off: placement in the organisation's zone, all-day bars,
hover and focus details, opening a booking, the week switch, the room page, and the phone's list.
"""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from app.extensions import db
from app.models import BookableObject, Booking, BookingStatus, Customer
from app.models.organisation import ROLE_ADMIN
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

pytestmark = needs_chromium


@pytest.fixture
def portal(tmp_path, clock):
    """An organisation in New York with a 09:00 meeting and an all-day booking on "today", 25 November 2026."""
    clock.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 07:00 in New York
    app = browser_app(tmp_path)
    with app.app_context():
        organisation = create_organisation("Alpha Rooms", "America/New_York")
        add_user(ADMIN, ROLE_ADMIN, organisation.id)
        board, hall = (
            BookableObject(organisation_id=organisation.id, name="Board room"),
            BookableObject(organisation_id=organisation.id, name="Hall"),
        )
        acme = Customer(organisation_id=organisation.id, name="Acme")
        db.session.add_all([board, hall, acme])
        db.session.flush()
        confirmed = db.session.scalar(
            db.select(BookingStatus).where(
                BookingStatus.organisation_id == organisation.id, BookingStatus.name == "Confirmed"
            )
        )
        meeting = Booking(
            organisation_id=organisation.id,
            object_id=board.id,
            status_id=confirmed.id,
            customer_id=acme.id,
            # 09:00 to 10:00 in New York (UTC-5 in November).
            start_at=datetime(2026, 11, 25, 14, 0, tzinfo=UTC),
            end_at=datetime(2026, 11, 25, 15, 0, tzinfo=UTC),
            remark="Quarterly review",
        )
        fair = Booking(
            organisation_id=organisation.id,
            object_id=hall.id,
            status_id=confirmed.id,
            start_at=datetime(2026, 11, 25, 5, 0, tzinfo=UTC),
            end_at=datetime(2026, 11, 26, 5, 0, tzinfo=UTC),
            remark="Book fair",
        )
        db.session.add_all([meeting, fair])
        db.session.commit()
        rooms = add_rooms_integration(
            SimpleNamespace(org=organisation.id, object=board.id), ["boardroom@contoso.example"]
        )
        ids = SimpleNamespace(
            org=organisation.id,
            meeting=meeting.id,
            fair=fair.id,
            room=rooms.links["boardroom@contoso.example"],
        )
    with served(app) as base:
        yield base, ids


def grid_block(page, booking_id):
    return page.locator(f".tl-grid li[data-booking='{booking_id}'] > a")


def axis_mark(page, label):
    return page.locator(".tl-axis .tl-mark", has_text=label).first


def test_a_nine_oclock_booking_sits_in_the_nine_oclock_slot_of_the_organisations_zone(portal):
    base, ids = portal
    with browser_page() as page:
        sign_in(page, base, ADMIN)
        page.goto(f"{base}/orgs/{ids.org}/bookings")
        assert "Wed 25 Nov 2026" in page.locator("#tl-period").inner_text()
        block, nine = grid_block(page, ids.meeting).bounding_box(), axis_mark(page, "09:00").bounding_box()
        assert abs(block["x"] - nine["x"]) <= 2
        assert abs(block["width"] - nine["width"]) <= 3
        assert "09:00–10:00" in grid_block(page, ids.meeting).inner_text()
        assert serious_accessibility_violations(page) == []
        assert sideways_overflow(page) == 0


def test_an_all_day_booking_is_a_bar_across_the_whole_day_labelled_all_day(portal):
    base, ids = portal
    with browser_page() as page:
        sign_in(page, base, ADMIN)
        page.goto(f"{base}/orgs/{ids.org}/bookings")
        bar = grid_block(page, ids.fair)
        assert bar.inner_text().startswith("All day")
        box, first, last = bar.bounding_box(), axis_mark(page, "00:00").bounding_box(), axis_mark(page, "23:00")
        last = last.bounding_box()
        assert abs(box["x"] - first["x"]) <= 2
        assert abs((box["x"] + box["width"]) - (last["x"] + last["width"])) <= 3
        assert "00:00–00:00" not in page.content()


def test_hover_and_keyboard_focus_show_time_status_customer_and_remark_and_a_click_opens_the_booking(portal):
    base, ids = portal
    with browser_page() as page:
        sign_in(page, base, ADMIN)
        page.goto(f"{base}/orgs/{ids.org}/bookings")
        block = grid_block(page, ids.meeting)
        details = block.locator(".tl-pop")
        assert not details.is_visible()
        assert block.get_attribute("title") == "Wed 25 Nov 09:00–10:00 · Confirmed · Acme · Quarterly review"
        block.hover()
        assert details.is_visible()
        shown = details.inner_text()
        assert "Wed 25 Nov 09:00–10:00" in shown and "Status: Confirmed" in shown and "Customer: Acme" in shown
        assert "Remark: Quarterly review" in shown
        page.mouse.move(0, 0)
        assert not details.is_visible()
        # Tab from the link just before the grid's blocks until the meeting has the keyboard focus.
        page.locator("#tl-period").click()
        for _ in range(40):
            page.keyboard.press("Tab")
            if block.evaluate("element => element === document.activeElement"):
                break
        assert block.evaluate("element => element === document.activeElement")
        assert details.is_visible()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith(f"/orgs/{ids.org}/bookings/{ids.meeting}/edit")


def test_the_week_switch_shows_monday_to_sunday_with_the_meeting_on_wednesday(portal):
    base, ids = portal
    with browser_page() as page:
        sign_in(page, base, ADMIN)
        page.goto(f"{base}/orgs/{ids.org}/bookings")
        with page.expect_navigation():
            page.get_by_role("link", name="Week", exact=True).click()
        assert "Mon 23 Nov – Sun 29 Nov 2026" in page.locator("#tl-period").inner_text()
        block, wednesday = grid_block(page, ids.meeting).bounding_box(), axis_mark(page, "Wed 25 Nov").bounding_box()
        assert wednesday["x"] <= block["x"] < wednesday["x"] + wednesday["width"]
        assert serious_accessibility_violations(page) == []
        with page.expect_navigation():
            page.get_by_role("link", name="Next week ›").click()
        assert "Mon 30 Nov – Sun 6 Dec 2026" in page.locator("#tl-period").inner_text()
        assert page.locator(".tl-grid li.tl-block").count() == 0


def test_a_rooms_page_shows_the_timeline_of_its_object(portal):
    base, ids = portal
    with browser_page() as page:
        sign_in(page, base, ADMIN)
        page.goto(f"{base}/orgs/{ids.org}/rooms/{ids.room}")
        assert page.get_by_role("heading", name="boardroom@contoso.example").is_visible()
        assert grid_block(page, ids.meeting).is_visible()
        assert page.locator(f"li[data-booking='{ids.fair}']").count() == 0
        assert serious_accessibility_violations(page) == []


def test_on_a_phone_the_day_is_a_list_per_object_without_sideways_scrolling(portal):
    base, ids = portal
    with browser_page(viewport=PHONE) as page:
        sign_in(page, base, ADMIN)
        page.goto(f"{base}/orgs/{ids.org}/bookings")
        assert not page.locator(".tl-grid").is_visible()
        meeting = page.locator(f".tl-agenda li[data-booking='{ids.meeting}']")
        assert meeting.is_visible()
        assert "Wed 25 Nov 09:00–10:00" in meeting.inner_text() and "Acme" in meeting.inner_text()
        assert "All day, Wed 25 Nov" in page.locator(f".tl-agenda li[data-booking='{ids.fair}']").inner_text()
        assert sideways_overflow(page) == 0
        assert serious_accessibility_violations(page) == []
        page.goto(f"{base}/orgs/{ids.org}/bookings?span=week")
        assert sideways_overflow(page) == 0
        page.goto(f"{base}/orgs/{ids.org}/rooms/{ids.room}")
        assert sideways_overflow(page) == 0
        assert page.locator(f".tl-agenda li[data-booking='{ids.meeting}']").is_visible()
        assert serious_accessibility_violations(page) == []
