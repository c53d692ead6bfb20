"""The settings form fits the connection method: only its fields are shown, validated and saved;
statuses are checkbox groups; errors are summarised at the top and tied to their fields."""

import re
from html.parser import HTMLParser

from app.extensions import db
from app.models import Integration
from tests.test_portal import integration_data
from tests.test_settings_take_effect import application_data


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def elements(response, tag=None, **wanted):
    """The start tags of the page as (tag, attributes), those of `tag` with the `wanted` attribute values."""
    parser = _Elements()
    parser.feed(response.get_data(as_text=True))
    return [
        attrs
        for name, attrs in parser.found
        if (tag is None or name == tag) and all(attrs.get(key) == value for key, value in wanted.items())
    ]


def element(response, tag=None, **wanted):
    (found,) = elements(response, tag, **wanted)
    return found


def text_by_id(response, element_id):
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', response.get_data(as_text=True), re.S)
    return match and match.group(1).strip()


def selected_option(response, select_name):
    select = re.search(rf'<select[^>]*name="{select_name}".*?</select>', response.get_data(as_text=True), re.S)
    return re.search(r'<option selected value="([^"]*)"', select.group(0)).group(1)


def new_integration(client, world, **overrides):
    response = client.post(f"/orgs/{world.a.org}/integrations/new", data=integration_data(world, **overrides))
    assert response.status_code == 302, response.get_data(as_text=True)
    return db.session.scalar(db.select(Integration).order_by(Integration.id.desc()))


def delegated_settings(integration):
    return (
        integration.object_id,
        sorted(s.name for s in integration.create_calendar_entry_statuses),
        sorted(s.name for s in integration.delete_on_statuses),
        integration.teams_meeting,
        integration.add_customer_attendee,
    )


# --- Only the chosen method's fields are validated and saved ----------------------------------


def test_an_application_save_neither_checks_nor_overwrites_the_delegated_settings(app, login, world):
    client = login(world.a.admin)
    with app.app_context():
        integration = new_integration(client, world)
        integration_id = integration.id
        stored = delegated_settings(integration)
    assert stored == (world.a.object, ["Confirmed", "Option"], ["Cancelled"], True, False)

    # The delegated fields still travel with the form (hidden), here with values that would not pass.
    saved = client.post(
        f"/orgs/{world.a.org}/integrations/{integration_id}/edit",
        data=application_data(
            world,
            object_id="999999",
            create_entry_status_ids=["not-a-status"],
            delete_on_status_ids=[],
            teams_meeting="",
            add_customer_attendee="y",
            window_future_days="200",
        ),
    )

    assert saved.status_code == 302, saved.get_data(as_text=True)
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.auth_mode, integration.window_future_days) == ("application", 200)
        assert delegated_settings(integration) == stored


def test_a_delegated_save_checks_and_saves_the_delegated_settings(app, login, world):
    client = login(world.a.admin)
    missing_object = client.post(f"/orgs/{world.a.org}/integrations/new", data=integration_data(world, object_id=0))
    assert missing_object.status_code == 200
    assert "choose it" in text_by_id(missing_object, "object_id-error")

    with app.app_context():
        integration = new_integration(
            client, world, create_entry_status_ids=[world.a.statuses["Invoiced"]], delete_on_status_ids=[]
        )
        assert delegated_settings(integration) == (world.a.object, ["Invoiced"], [], True, False)


def test_the_form_shows_the_fields_of_the_stored_method_only(app, login, world):
    client = login(world.a.admin)
    with app.app_context():
        integration_id = new_integration(client, world, **application_data(world)).id

    page = client.get(f"/orgs/{world.a.org}/integrations/{integration_id}/edit")

    assert "hidden" in element(page, "fieldset", id="delegated-calendar")
    assert "hidden" in element(page, "fieldset", id="delegated-outbound")
    assert "hidden" not in element(page, "fieldset", id="application-rooms")
    rooms_group = re.search(r'<fieldset[^>]*id="application-rooms".*?</fieldset>', page.get_data(as_text=True), re.S)
    assert f'href="/orgs/{world.a.org}/integrations/{integration_id}/rooms"' in rooms_group.group(0)


# --- Switching method re-renders without saving -------------------------------------------------


def test_showing_the_fields_of_another_method_keeps_what_was_typed_and_saves_nothing(app, login, world):
    client = login(world.a.admin)
    typed = integration_data(
        world,
        auth_mode="application",
        name="Rooms on floor 3",
        tenant_id="common",  # wrong, but no error is shown until the admin saves
        client_secret="typed-secret-SET-9",
        lock_status_ids=[world.a.statuses["Invoiced"], world.a.statuses["Option"]],
        window_past_days="14",
    )
    response = client.post(f"/orgs/{world.a.org}/integrations/new", data=typed | {"switch_method": "1"})

    assert response.status_code == 200
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Integration)) == 0
    assert "There is a problem" not in response.get_data(as_text=True)
    assert not elements(response, "p", **{"class": "error"})
    assert element(response, "input", name="name")["value"] == "Rooms on floor 3"
    assert element(response, "input", name="tenant_id")["value"] == "common"
    assert element(response, "input", name="window_past_days")["value"] == "14"
    assert "checked" in element(response, "input", name="auth_mode", value="application")
    assert {box["value"] for box in elements(response, "input", name="lock_status_ids") if "checked" in box} == {
        str(world.a.statuses["Invoiced"]),
        str(world.a.statuses["Option"]),
    }
    assert "hidden" in element(response, "fieldset", id="delegated-calendar")
    assert "hidden" not in element(response, "fieldset", id="application-rooms")
    # The delegated values typed before stay in the (hidden) form, for a switch back.
    assert selected_option(response, "object_id") == str(world.a.object)
    # The secret is never sent back; the admin is told to type it again.
    assert "typed-secret-SET-9" not in response.get_data(as_text=True)
    assert "type it again" in text_by_id(response, "secret-again")


def test_showing_the_fields_of_another_method_changes_nothing_stored(app, login, world):
    client = login(world.a.admin)
    with app.app_context():
        integration_id = new_integration(client, world).id
    edit = f"/orgs/{world.a.org}/integrations/{integration_id}/edit"

    response = client.post(edit, data=application_data(world, name="Renamed") | {"switch_method": "1"})

    assert response.status_code == 200
    assert "hidden" in element(response, "fieldset", id="delegated-outbound")
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.name, integration.auth_mode) == ("Meeting rooms", "delegated")


def test_another_organisations_admin_cannot_switch_the_form_of_an_integration(app, login, world):
    client = login(world.a.admin)
    with app.app_context():
        integration_id = new_integration(client, world).id
    client.post("/logout")
    outsider = login(world.b.admin)

    response = outsider.post(
        f"/orgs/{world.a.org}/integrations/{integration_id}/edit", data=integration_data(world) | {"switch_method": "1"}
    )

    assert response.status_code == 404


# --- Statuses are checkbox groups ----------------------------------------------------------------


def test_status_sets_are_checkbox_groups_that_save_exactly_the_checked_statuses(app, login, world):
    client = login(world.a.admin)
    with app.app_context():
        integration_id = new_integration(client, world).id
    edit = f"/orgs/{world.a.org}/integrations/{integration_id}/edit"

    page = client.get(edit)
    assert not elements(page, "select", multiple="")
    for name in ("lock_status_ids", "create_entry_status_ids", "delete_on_status_ids"):
        boxes = elements(page, "input", name=name)
        assert len(boxes) == len(world.a.statuses) and {box["type"] for box in boxes} == {"checkbox"}
        assert element(page, "fieldset", id=name)
    assert [box["value"] for box in elements(page, "input", name="lock_status_ids") if "checked" in box] == [
        str(world.a.statuses["Invoiced"])
    ]
    assert "hold Ctrl" not in page.get_data(as_text=True)
    # Single choices stay a list to pick one from.
    assert element(page, "select", name="cancel_status_id")

    client.post(
        edit,
        data=integration_data(
            world,
            lock_status_ids=[world.a.statuses["Invoiced"], world.a.statuses["Confirmed"]],
            delete_on_status_ids=[],
        ),
    )
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert sorted(s.name for s in integration.lock_statuses) == ["Confirmed", "Invoiced"]
        assert integration.delete_on_statuses == []


# --- Errors: a summary at the top, each field tied to its message -------------------------------


def test_an_invalid_save_is_summarised_at_the_top_with_a_link_to_each_field(app, login, world):
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/integrations/new",
        data=integration_data(
            world,
            tenant_id="common",
            client_id="not-a-guid",
            window_future_days="0",
            lock_status_ids=["999999"],
        ),
    )

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    summary = element(response, "div", id="error-summary")
    assert summary["tabindex"] == "-1"
    # First after the heading, before the guide and the form.
    assert body.index("<h1>") < body.index('id="error-summary"') < body.index('id="mode-guide"')
    assert "There is a problem" in body
    summary_html = body[body.index('id="error-summary"') : body.index("</div>", body.index('id="error-summary"'))]
    hrefs = re.findall(r'href="(#[^"]+)"', summary_html)
    assert hrefs == ["#tenant_id", "#client_id", "#lock_status_ids-0", "#window_future_days"]
    for href in hrefs:
        assert elements(response, id=href[1:]), href
    assert "Client id: The client id is a GUID" in summary_html


def test_fields_in_error_carry_aria_invalid_and_point_to_their_message(app, login, world):
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/integrations/new",
        data=integration_data(world, tenant_id="common", lock_status_ids=["999999"]),
    )

    tenant = element(response, "input", name="tenant_id")
    assert tenant["aria-invalid"] == "true"
    assert "tenant_id-error" in tenant["aria-describedby"].split()
    assert "admin consent does not work" in text_by_id(response, "tenant_id-error")
    # The help text stays tied to the field too.
    assert "tenant_id-help" in tenant["aria-describedby"].split()

    group = element(response, "fieldset", id="lock_status_ids")
    assert "lock_status_ids-error" in group["aria-describedby"].split()
    assert {box.get("aria-invalid") for box in elements(response, "input", name="lock_status_ids")} == {"true"}
    assert text_by_id(response, "lock_status_ids-error")

    client_id = element(response, "input", name="client_id")
    assert "aria-invalid" not in client_id
    assert "client_id-error" not in client_id["aria-describedby"]


def test_every_form_of_the_portal_ties_its_errors_to_the_fields(client, world):
    response = client.post("/login", data={"email": "", "password": ""})

    email = element(response, "input", name="email")
    assert email["aria-invalid"] == "true"
    message_id = email["aria-describedby"].split()[0]
    assert text_by_id(response, message_id)
    assert element(response, "div", id="error-summary")
    assert element(response, "a", href="#email")
