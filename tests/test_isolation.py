"""An admin sees and changes only their own organisation; support sees every one."""

from datetime import UTC, datetime

import pytest

from app.extensions import db
from app.models import Booking, Integration


@pytest.fixture
def b_rows(app, world):
    """A booking and an integration in organisation B."""
    with app.app_context():
        booking = Booking(
            organisation_id=world.b.org,
            object_id=world.b.object,
            status_id=world.b.statuses["Confirmed"],
            start_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
            end_at=datetime(2026, 12, 1, 10, tzinfo=UTC),
            remark="Board meeting of Beta",
        )
        integration = Integration(organisation_id=world.b.org, name="Beta Outlook")
        db.session.add_all([booking, integration])
        db.session.commit()
        return {"booking": booking.id, "integration": integration.id}


def b_pages(world, rows):
    org = world.b.org
    return [
        f"/orgs/{org}",
        f"/orgs/{org}/edit",
        f"/orgs/{org}/objects",
        f"/orgs/{org}/objects/new",
        f"/orgs/{org}/objects/{world.b.object}/edit",
        f"/orgs/{org}/customers",
        f"/orgs/{org}/customers/{world.b.customer}/edit",
        f"/orgs/{org}/statuses",
        f"/orgs/{org}/statuses/{world.b.statuses['Confirmed']}/edit",
        f"/orgs/{org}/bookings",
        f"/orgs/{org}/bookings/new",
        f"/orgs/{org}/bookings/{rows['booking']}/edit",
        f"/orgs/{org}/integrations",
        f"/orgs/{org}/integrations/new",
        f"/orgs/{org}/integrations/{rows['integration']}",
        f"/orgs/{org}/integrations/{rows['integration']}/edit",
    ]


def test_an_admin_gets_404_for_every_page_of_another_organisation(login, world, b_rows):
    client = login(world.a.admin)
    for path in b_pages(world, b_rows):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Beta" not in response.get_data(as_text=True), path


def test_support_sees_every_page_of_both_organisations(login, world, b_rows):
    client = login(world.support)
    for path in b_pages(world, b_rows):
        assert client.get(path).status_code == 200, path
    assert client.get(f"/orgs/{world.a.org}").status_code == 200


def test_an_admin_cannot_reach_b_rows_through_a_own_urls(login, world, b_rows):
    """Ids of B's rows under A's organisation path must not resolve either."""
    client = login(world.a.admin)
    org = world.a.org
    for path in (
        f"/orgs/{org}/objects/{world.b.object}/edit",
        f"/orgs/{org}/customers/{world.b.customer}/edit",
        f"/orgs/{org}/bookings/{b_rows['booking']}/edit",
        f"/orgs/{org}/integrations/{b_rows['integration']}",
    ):
        assert client.get(path).status_code == 404, path


def test_an_admin_cannot_change_another_organisations_rows(app, login, world, b_rows):
    client = login(world.a.admin)
    org = world.b.org
    assert client.post(f"/orgs/{org}/objects/{world.b.object}/edit", data={"name": "Hijacked"}).status_code == 404
    assert client.post(f"/orgs/{org}/objects/new", data={"name": "Planted"}).status_code == 404
    response = client.post(
        f"/orgs/{org}/bookings/{b_rows['booking']}/edit",
        data={
            "object_id": world.b.object,
            "status_id": world.b.statuses["Cancelled"],
            "customer_id": 0,
            "start_at": "2026-12-01T10:00",
            "end_at": "2026-12-01T11:00",
        },
    )
    assert response.status_code == 404
    with app.app_context():
        booking = db.session.get(Booking, b_rows["booking"])
        assert booking.status_id == world.b.statuses["Confirmed"]
        assert db.session.get(Integration, b_rows["integration"]).name == "Beta Outlook"


def test_an_admin_cannot_book_another_organisations_object_from_their_own_form(app, login, world):
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/bookings/new",
        data={
            "object_id": world.b.object,
            "status_id": world.a.statuses["Confirmed"],
            "customer_id": 0,
            "start_at": "2026-12-01T10:00",
            "end_at": "2026-12-01T11:00",
        },
    )
    assert response.status_code == 200
    assert "Not a valid choice" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Booking)) == 0


def test_organisation_list_is_for_support_only(login, world):
    assert login(world.a.admin).get("/orgs").status_code == 404


def test_support_lists_both_organisations(login, world):
    body = login(world.support).get("/orgs").get_data(as_text=True)
    assert "Alpha Rooms" in body and "Beta Halls" in body
