import re

from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD, config_for


def test_first_run_creates_the_first_support_account_then_disappears(client, app):
    assert client.get("/login").location.endswith("/setup")

    response = client.post(
        "/setup",
        data={"email": "First@Example.com", "password": "long enough pw", "password_again": "long enough pw"},
    )
    assert response.status_code == 302
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert (user.email, user.role) == ("first@example.com", "support")
    assert client.get("/orgs").status_code == 200
    assert client.get("/setup").status_code == 404


def test_first_run_rejects_a_short_or_mismatched_password(client, app):
    response = client.post("/setup", data={"email": "a@b.example", "password": "short", "password_again": "other"})
    body = response.get_data(as_text=True)
    assert "Use at least 10 characters." in body
    assert "The passwords differ." in body
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0


def test_wrong_password_is_refused_next_to_the_field(client, world):
    response = client.post("/login", data={"email": world.a.admin, "password": "not it"})
    assert response.status_code == 200
    assert "Unknown e-mail address or wrong password." in response.get_data(as_text=True)
    assert client.get(f"/orgs/{world.a.org}").status_code == 302  # still signed out


def test_sign_in_and_out(client, world):
    response = client.post("/login", data={"email": world.a.admin.upper(), "password": PASSWORD})
    assert response.location == "/"
    assert client.get("/").location == f"/orgs/{world.a.org}"
    client.post("/logout")
    assert client.get(f"/orgs/{world.a.org}").location.startswith("/login")


def test_sign_in_never_redirects_to_another_site(client, world):
    response = client.post(
        "/login?next=https://evil.example/steal", data={"email": world.a.admin, "password": PASSWORD}
    )
    assert response.location == "/"


def test_pages_need_sign_in(client, world):
    for path in ("/", "/orgs", f"/orgs/{world.a.org}/bookings", f"/orgs/{world.a.org}/integrations"):
        assert client.get(path).location.startswith("/login"), path


def test_forms_are_protected_against_cross_site_requests(app, world):
    from app import create_app

    protected = create_app(
        config_for(app.config["SQLALCHEMY_DATABASE_URI"], WTF_CSRF_ENABLED=True), instance_path=app.instance_path
    )
    client = protected.test_client()
    refused = client.post("/login", data={"email": world.a.admin, "password": PASSWORD})
    assert refused.status_code == 400

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    accepted = client.post("/login", data={"email": world.a.admin, "password": PASSWORD, "csrf_token": token})
    assert accepted.status_code == 302
    with protected.app_context():
        db.engine.dispose()


def test_create_user_command(app, world):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-user", "--email", "New@A.example", "--role", "admin", "--organisation", "Alpha Rooms"],
        input="a long password\na long password\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == "new@a.example"))
        assert user.organisation_id == world.a.org
        assert user.check_password("a long password")


def test_create_user_command_refuses_an_admin_without_organisation(app):
    result = app.test_cli_runner().invoke(
        args=["create-user", "--email", "x@y.example", "--role", "admin"], input="a long password\na long password\n"
    )
    assert result.exit_code != 0
    assert "--organisation" in result.output


def test_create_organisation_command_adds_default_statuses(app):
    result = app.test_cli_runner().invoke(args=["create-organisation", "Gamma", "--timezone", "Europe/London"])
    assert result.exit_code == 0, result.output
    from app.models import BookingStatus, Organisation

    with app.app_context():
        organisation = db.session.scalar(db.select(Organisation).where(Organisation.name == "Gamma"))
        names = db.session.scalars(
            db.select(BookingStatus.name).where(BookingStatus.organisation_id == organisation.id)
        ).all()
        assert organisation.timezone == "Europe/London"
        assert set(names) == {"Option", "Confirmed", "Cancelled", "Invoiced"}
