import re

from app.extensions import db
from app.models import BookableObject, BookingStatus, Customer, Integration, Organisation
from tests.test_bookings import field_errors

CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def test_support_creates_an_organisation_with_default_statuses(app, login, world):
    client = login(world.support)
    response = client.post("/orgs/new", data={"name": "Gamma Centre", "timezone": "Europe/Brussels"})
    assert response.status_code == 302
    with app.app_context():
        organisation = db.session.scalar(db.select(Organisation).where(Organisation.name == "Gamma Centre"))
        statuses = db.session.scalars(
            db.select(BookingStatus).where(BookingStatus.organisation_id == organisation.id)
        ).all()
        assert {s.name: s.blocks_object for s in statuses} == {
            "Option": True,
            "Confirmed": True,
            "Cancelled": False,
            "Invoiced": True,
        }


def test_organisation_form_errors(login, world):
    client = login(world.support)
    response = client.post("/orgs/new", data={"name": "Alpha Rooms", "timezone": "Mars/Olympus"})
    assert field_errors(response, "timezone") == ["Unknown time zone; use a name such as Europe/Amsterdam."]
    response = client.post("/orgs/new", data={"name": "Alpha Rooms", "timezone": "UTC"})
    assert field_errors(response, "name") == ["An organisation with this name exists already."]


def test_objects_customers_and_statuses_are_created_and_edited(app, login, world):
    client = login(world.a.admin)
    org = world.a.org
    assert client.post(f"/orgs/{org}/objects/new", data={"name": " Hall 2 ", "capacity": "40"}).status_code == 302
    assert (
        client.post(f"/orgs/{org}/customers/new", data={"name": "Dana", "email": "Dana@Example.COM"}).status_code == 302
    )
    assert client.post(f"/orgs/{org}/statuses/new", data={"name": "Tentative", "position": "5"}).status_code == 302
    with app.app_context():
        hall = db.session.scalar(db.select(BookableObject).where(BookableObject.name == "Hall 2"))
        dana = db.session.scalar(db.select(Customer).where(Customer.name == "Dana"))
        assert (hall.capacity, hall.active, hall.organisation_id) == (40, False, org)
        assert dana.email == "dana@example.com"
    response = client.post(f"/orgs/{org}/objects/{hall.id}/edit", data={"name": "Hall Two", "active": "y"})
    assert response.status_code == 302
    assert "Hall Two" in client.get(f"/orgs/{org}/objects").get_data(as_text=True)


def test_a_duplicate_object_name_is_refused_next_to_the_field_and_nothing_changes(app, login, world):
    client = login(world.a.admin)
    response = client.post(f"/orgs/{world.a.org}/objects/new", data={"name": "Room A"})
    assert field_errors(response, "name") == ["Another object has this name already."]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(BookableObject)) == 2


def test_a_bad_customer_email_is_refused(login, world):
    response = login(world.a.admin).post(
        f"/orgs/{world.a.org}/customers/new", data={"name": "X", "email": "not-an-address"}
    )
    assert field_errors(response, "email")


def integration_data(world, **overrides):
    data = {
        "name": "Meeting rooms",
        "auth_mode": "delegated",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": CLIENT_ID,
        "client_secret": "the-client-secret-value",
        "ires_field": "outlook_event_id",
        "allow_booking_update": "y",
        "cancel_status_id": world.a.statuses["Cancelled"],
        "new_booking_status_id": world.a.statuses["Option"],
        "status_with_customer_id": world.a.statuses["Confirmed"],
        "lock_status_ids": [world.a.statuses["Invoiced"]],
        "create_entry_status_ids": [world.a.statuses["Confirmed"], world.a.statuses["Option"]],
        "delete_on_status_ids": [world.a.statuses["Cancelled"]],
        "teams_meeting": "y",
        "window_past_days": "30",
        "window_future_days": "180",
        "object_id": world.a.object,
    }
    data.update(overrides)
    return data


def test_an_integration_keeps_every_setting(app, login, world):
    client = login(world.a.admin)
    response = client.post(f"/orgs/{world.a.org}/integrations/new", data=integration_data(world))
    assert response.status_code == 302
    with app.app_context():
        integration = db.session.scalar(db.select(Integration))
        assert integration.auth_mode == "delegated"
        assert integration.client_secret == "the-client-secret-value"
        assert integration.lock_statuses[0].name == "Invoiced"
        assert {s.name for s in integration.create_calendar_entry_statuses} == {"Confirmed", "Option"}
        assert integration.delete_on_statuses[0].name == "Cancelled"
        assert (integration.cancel_status.name, integration.new_booking_status.name) == ("Cancelled", "Option")
        assert integration.status_with_customer.name == "Confirmed"
        assert (integration.teams_meeting, integration.add_customer_attendee) == (True, False)
        assert (integration.window_past_days, integration.window_future_days) == (30, 180)
        assert integration.object_id == world.a.object


def test_the_client_secret_is_write_only(app, login, world):
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/integrations/new", data=integration_data(world))
    with app.app_context():
        integration_id = db.session.scalar(db.select(Integration.id))
    base = f"/orgs/{world.a.org}/integrations/{integration_id}"
    for page in (base, base + "/edit"):
        body = client.get(page).get_data(as_text=True)
        assert "the-client-secret-value" not in body
    assert "A client secret is stored" in client.get(base + "/edit").get_data(as_text=True)

    # Saving with an empty secret field keeps the stored secret.
    client.post(base + "/edit", data=integration_data(world, client_secret="", name="Renamed"))
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.name, integration.client_secret) == ("Renamed", "the-client-secret-value")


def test_integration_form_errors_are_shown_per_field(app, login, world):
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/integrations/new",
        data=integration_data(
            world, tenant_id="common", client_id="not-a-guid", ires_field="1 bad", object_id=0, window_future_days="0"
        ),
    )
    assert "admin consent does not work with" in field_errors(response, "tenant_id")[0]
    assert field_errors(response, "client_id")
    assert field_errors(response, "ires_field")
    assert field_errors(response, "object_id") == ["Delegated mode syncs one calendar into one object: choose it."]
    assert field_errors(response, "window_future_days")
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Integration)) == 0


def test_application_mode_needs_no_object(app, login, world):
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/integrations/new",
        data=integration_data(world, auth_mode="application", object_id=0),
    )
    assert response.status_code == 302


def test_the_azure_redirect_uri_and_notification_url_come_from_the_public_base_url(login, world):
    body = login(world.a.admin).get(f"/orgs/{world.a.org}/integrations/new").get_data(as_text=True)
    assert "https://portal.test/oauth/callback" in body
    assert "https://portal.test/webhooks/graph" in body
    assert re.search(r"one calendar and one object: delegated", body, re.IGNORECASE)


def test_unknown_pages_answer_404_with_the_portal_layout(login, world):
    response = login(world.a.admin).get("/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)
