"""People management: accounts created, disabled and enabled in the portal, set-password links,
password change and the forgotten-password e-mail."""

import re
from datetime import timedelta
from html import unescape

import pytest

from app.auth import audit_log, passwords
from app.extensions import db
from app.jobs import queue
from app.models import AuditEntry, User
from tests.conftest import PASSWORD
from tests.test_alerts_delivery import smtp_server  # noqa: F401  (fixture)

NEW_PASSWORD = "a brand new passphrase"


def account(app, email):
    with app.app_context():
        return db.session.scalar(db.select(User).where(User.email == email))


def audit_actions(app):
    with app.app_context():
        return [
            (entry.action, entry.user_email, entry.detail, entry.organisation_id)
            for entry in db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.id))
        ]


def shown_link(response):
    match = re.search(r'<code id="set-password-link">([^<]+)</code>', response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return unescape(match.group(1)).removeprefix("https://portal.test")


def create_admin(client, world, email="new.admin@a.example"):
    response = client.post("/people/new", data={"email": email, "role": "admin", "organisation": world.a.org})
    assert response.status_code == 200
    return response


def run_link_jobs(app):
    with app.app_context():
        while (job := queue.claim("test-worker", [passwords.SEND_ACCOUNT_LINK])) is not None:
            passwords.run_send_account_link(job.key, job.payload)
            queue.complete(job)


def set_password_with(client, path, password=NEW_PASSWORD, again=None):
    return client.post(path, data={"password": password, "password_again": again or password})


# -- creating accounts -----------------------------------------------------------------


def test_support_creates_an_admin_for_an_organisation_and_the_link_sets_its_password(app, client, world, login):
    login(world.support)
    response = create_admin(client, world)
    assert "Account new.admin@a.example created" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    path = shown_link(response)

    created = account(app, "new.admin@a.example")
    assert (created.role, created.organisation_id, created.status) == ("admin", world.a.org, "invited")

    client.post("/logout")
    assert client.post("/login", data={"email": "new.admin@a.example", "password": ""}).status_code == 200

    form_page = client.get(path)
    assert "For <strong>new.admin@a.example</strong>" in form_page.get_data(as_text=True)
    assert form_page.headers["Cache-Control"] == "no-store"
    response = set_password_with(client, path)
    assert response.status_code == 302
    assert client.get(f"/orgs/{world.a.org}").status_code == 200  # signed in as the new admin
    client.post("/logout")
    login("new.admin@a.example", NEW_PASSWORD)
    assert account(app, "new.admin@a.example").status == "active"


def test_support_creates_a_support_account(app, client, world, login):
    login(world.support)
    response = client.post("/people/new", data={"email": "Helper@IReserve.example", "role": "support"})
    assert response.status_code == 200
    created = account(app, "helper@ireserve.example")
    assert (created.role, created.organisation_id) == ("support", None)
    assert ("account_created", world.support, "helper@ireserve.example (support)", None) in audit_actions(app)


def test_the_account_form_explains_what_is_wrong_and_keeps_the_input(app, client, world, login):
    login(world.support)
    response = client.post("/people/new", data={"email": world.a.admin, "role": "admin", "organisation": 0})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "An account with this e-mail address exists already." in body
    assert "Choose the organisation this admin belongs to." in body
    assert f'value="{world.a.admin}"' in body
    response = client.post("/people/new", data={"email": "not an address", "role": "admin", "organisation": 99999})
    assert response.status_code == 200
    assert "Invalid email address." in response.get_data(as_text=True)


def test_an_admin_sees_the_accounts_of_their_own_organisation_only(app, client, world, login):
    login(world.a.admin)
    assert client.get("/people").location.endswith(f"/orgs/{world.a.org}/people")
    body = client.get(f"/orgs/{world.a.org}/people").get_data(as_text=True)
    assert world.a.admin in body
    assert world.b.admin not in body and world.support not in body
    assert "Disable" not in body and "New account" not in body
    assert client.get(f"/orgs/{world.b.org}/people").status_code == 404


def test_an_admin_cannot_create_disable_or_issue_links(app, client, world, login):
    other = account(app, world.b.admin)
    login(world.a.admin)
    assert client.get("/people/new").status_code == 404
    assert client.post("/people/new", data={"email": "x@a.example", "role": "support"}).status_code == 404
    assert client.post(f"/people/{other.id}/disable").status_code == 404
    assert client.post(f"/people/{other.id}/link").status_code == 404
    assert account(app, "x@a.example") is None
    assert not account(app, world.b.admin).is_disabled


def test_support_sees_every_account_with_its_organisation(app, client, world, login):
    login(world.support)
    body = client.get("/people").get_data(as_text=True)
    for email in (world.a.admin, world.b.admin, world.support):
        assert email in body
    assert "Alpha Rooms" in body and "Beta Halls" in body
    assert "never" in body  # the admins have not signed in yet


# -- disabling -------------------------------------------------------------------------


def test_a_disabled_account_cannot_sign_in_and_its_open_session_ends(app, world, login):
    admin_client = app.test_client()
    admin_client.post("/login", data={"email": world.a.admin, "password": PASSWORD})
    assert admin_client.get(f"/orgs/{world.a.org}").status_code == 200

    support = login(world.support)
    target = account(app, world.a.admin)
    assert support.post(f"/people/{target.id}/disable").status_code == 302
    assert account(app, world.a.admin).status == "disabled"

    assert admin_client.get(f"/orgs/{world.a.org}").status_code == 302  # signed out
    refused = app.test_client().post("/login", data={"email": world.a.admin, "password": PASSWORD})
    assert "This account is disabled." in refused.get_data(as_text=True)
    wrong = app.test_client().post("/login", data={"email": world.a.admin, "password": "not it"})
    assert "Unknown e-mail address or wrong password." in wrong.get_data(as_text=True)
    assert "disabled" not in wrong.get_data(as_text=True)

    assert support.post(f"/people/{target.id}/enable").status_code == 302
    app.test_client().post("/login", data={"email": world.a.admin, "password": PASSWORD})
    actions = [action for action, *_ in audit_actions(app)]
    assert actions == ["account_disabled", "account_enabled"]


def test_nobody_disables_their_own_account(app, client, world, login):
    login(world.support)
    me = account(app, world.support)
    response = client.post(f"/people/{me.id}/disable", follow_redirects=True)
    assert "You cannot disable your own account." in response.get_data(as_text=True)
    assert not account(app, world.support).is_disabled
    assert audit_actions(app) == []


def test_the_last_active_support_account_cannot_be_disabled(app, client, world, login):
    from app.auth import accounts

    with app.app_context():
        helper = User(email="helper@ireserve.example", role="support")
        helper.set_password(NEW_PASSWORD)
        invited = User(email="invited@ireserve.example", role="support")
        invited.set_unusable_password()
        db.session.add_all([helper, invited])
        db.session.commit()
        helper_id = helper.id
    first = account(app, world.support)
    login("helper@ireserve.example", NEW_PASSWORD)
    assert client.post(f"/people/{first.id}/disable").status_code == 302
    assert account(app, world.support).is_disabled

    # Through the portal an active support user is always another active one, so the rule
    # guards whatever else calls it (and races between two support users).
    with app.app_context():
        with pytest.raises(accounts.AccountRefused, match="last active support account"):
            accounts.disable_account(db.session.get(User, first.id), db.session.get(User, helper_id))


# -- links -----------------------------------------------------------------------------


def test_a_link_works_once(app, client, world, login):
    login(world.support)
    path = shown_link(create_admin(client, world))
    client.post("/logout")
    assert set_password_with(app.test_client(), path).status_code == 302
    again = app.test_client().get(path)
    assert again.status_code == 410
    assert "This link has been used or replaced by a newer one." in again.get_data(as_text=True)
    assert set_password_with(app.test_client(), path, "another passphrase!").status_code == 410
    assert ("password_set", "new.admin@a.example", "new.admin@a.example", world.a.org) in audit_actions(app)


def test_a_link_expires_after_72_hours(app, client, world, login, clock):
    login(world.support)
    path = shown_link(create_admin(client, world))
    clock.advance(timedelta(hours=71, minutes=59))
    assert app.test_client().get(path).status_code == 200
    clock.advance(timedelta(minutes=1))
    response = app.test_client().get(path)
    assert response.status_code == 410
    assert "This link has expired." in response.get_data(as_text=True)
    assert set_password_with(app.test_client(), path).status_code == 410
    assert not account(app, "new.admin@a.example").has_password


def test_a_tampered_link_is_refused(app, client, world, login):
    from itsdangerous import URLSafeSerializer

    login(world.support)
    path = shown_link(create_admin(client, world))
    token = path.rsplit("/", 1)[1]
    payload, signature = token.rsplit(".", 1)
    # A payload character in the middle carries all six of its bits, so changing it changes the content.
    flipped = payload[:4] + ("B" if payload[4] != "B" else "C") + payload[5:] + "." + signature
    user = account(app, "new.admin@a.example")
    later = int(clock_now_plus_days(30))
    signed_elsewhere = URLSafeSerializer("another installation's key", salt="set-password-link").dumps(
        [account(app, world.a.admin).id, user.link_nonce, "reset", later]
    )
    for bad in (flipped, signed_elsewhere, "nonsense"):
        response = app.test_client().get(f"/set-password/{bad}")
        assert response.status_code == 410
        assert "This link is not valid." in response.get_data(as_text=True)
    assert app.test_client().get(path).status_code == 200


def clock_now_plus_days(days):
    from datetime import UTC, datetime

    return (datetime.now(UTC) + timedelta(days=days)).timestamp()


def test_a_new_link_replaces_the_earlier_one(app, client, world, login):
    login(world.support)
    first = shown_link(create_admin(client, world))
    user = account(app, "new.admin@a.example")
    second = shown_link(client.post(f"/people/{user.id}/link", data={"delivery": "show"}))
    assert app.test_client().get(first).status_code == 410
    assert app.test_client().get(second).status_code == 200
    assert [a for a, *_ in audit_actions(app)] == ["account_created", "password_link_issued", "password_link_issued"]


def test_the_set_password_form_checks_length_and_confirmation(app, client, world, login):
    login(world.support)
    path = shown_link(create_admin(client, world))
    anonymous = app.test_client()
    body = anonymous.post(path, data={"password": "short", "password_again": "other"}).get_data(as_text=True)
    assert "Use at least 10 characters." in body and "The passwords differ." in body
    assert anonymous.get(path).status_code == 200  # a refused attempt does not spend the link


def test_a_disabled_accounts_link_stops_working(app, client, world, login):
    login(world.support)
    path = shown_link(create_admin(client, world))
    user = account(app, "new.admin@a.example")
    client.post(f"/people/{user.id}/disable")
    assert app.test_client().get(path).status_code == 410


# -- password change -------------------------------------------------------------------


def test_changing_the_password_needs_the_current_one(app, client, world, login):
    login(world.a.admin)
    wrong = client.post(
        "/account/password",
        data={"current_password": "not it", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
    )
    assert "This is not your current password." in wrong.get_data(as_text=True)
    assert account(app, world.a.admin).check_password(PASSWORD)

    right = client.post(
        "/account/password",
        data={"current_password": PASSWORD, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
    )
    assert right.status_code == 302
    user = account(app, world.a.admin)
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
    entries = audit_actions(app)
    assert entries == [("password_changed", world.a.admin, world.a.admin, world.a.org)]
    assert all(NEW_PASSWORD not in detail and PASSWORD not in detail for _, _, detail, _ in entries)


# -- forgotten password ----------------------------------------------------------------


def test_forgot_password_is_hidden_without_smtp(app, client, world):
    assert "Forgot password" not in client.get("/login").get_data(as_text=True)
    assert client.get("/forgot-password").status_code == 404


def test_forgot_password_mails_a_reset_link_and_answers_the_same_for_unknown_addresses(
    app,
    client,
    world,
    smtp_server,  # noqa: F811
):
    assert "Forgot password?" in client.get("/login").get_data(as_text=True)
    known = client.post("/forgot-password", data={"email": world.a.admin.upper()})
    unknown = client.post("/forgot-password", data={"email": "nobody@a.example"})
    assert known.status_code == unknown.status_code == 200
    assert "If an account exists for this address" in known.get_data(as_text=True)
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)

    run_link_jobs(app)
    messages = smtp_server.messages()
    assert [recipients for recipients, _ in messages] == [[world.a.admin]]
    text = messages[0][1].get_content()
    link = re.search(r"https://portal\.test(/set-password/\S+)", text).group(1)
    assert "for 1 hour" in text

    response = set_password_with(app.test_client(), link)
    assert response.status_code == 302
    assert account(app, world.a.admin).check_password(NEW_PASSWORD)
    actions = audit_actions(app)
    assert [a for a, *_ in actions] == ["password_reset_requested", "password_set"]
    assert all(link.rsplit("/", 1)[1] not in detail for _, _, detail, _ in actions)


def test_a_reset_link_expires_after_an_hour(app, client, world, clock, smtp_server):  # noqa: F811
    client.post("/forgot-password", data={"email": world.a.admin})
    run_link_jobs(app)
    link = re.search(r"(/set-password/\S+)", smtp_server.messages()[0][1].get_content()).group(1)
    clock.advance(timedelta(hours=1))
    assert app.test_client().get(link).status_code == 410


def test_a_new_account_gets_its_link_by_email_when_smtp_is_configured(
    app,
    client,
    world,
    login,
    smtp_server,  # noqa: F811
):
    login(world.support)
    body = create_admin(client, world).get_data(as_text=True)
    assert "being e-mailed to new.admin@a.example" in body
    assert "set-password-link" not in body
    run_link_jobs(app)
    ((recipients, message),) = smtp_server.messages()
    assert recipients == ["new.admin@a.example"]
    assert "set your password" in message["Subject"]
    link = re.search(r"(/set-password/\S+)", message.get_content()).group(1)
    assert app.test_client().get(link).status_code == 200


def test_a_disabled_account_gets_no_reset_mail(app, client, world, smtp_server):  # noqa: F811
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == world.a.admin))
        from app import clock as app_clock

        user.disabled_at = app_clock.utcnow()
        db.session.commit()
    client.post("/forgot-password", data={"email": world.a.admin})
    run_link_jobs(app)
    assert smtp_server.messages() == []


# -- labels ----------------------------------------------------------------------------


def test_every_account_action_reads_as_a_sentence():
    for action in (
        audit_log.ACCOUNT_CREATED,
        audit_log.ACCOUNT_DISABLED,
        audit_log.ACCOUNT_ENABLED,
        audit_log.LINK_ISSUED,
        audit_log.PASSWORD_SET,
        audit_log.PASSWORD_CHANGED,
        audit_log.RESET_REQUESTED,
    ):
        assert audit_log.ACTION_LABELS[action][0].isupper()


# -- command line ----------------------------------------------------------------------


def test_an_account_made_on_the_command_line_is_active_and_signs_in(app, client, world, login):
    result = app.test_cli_runner().invoke(
        args=["create-user", "--email", "cli@a.example", "--organisation", "Alpha Rooms"],
        input="a long password\na long password\n",
    )
    assert result.exit_code == 0, result.output
    assert account(app, "cli@a.example").status == "active"
    login("cli@a.example", "a long password")
    assert "cli@a.example" in client.get(f"/orgs/{world.a.org}/people").get_data(as_text=True)


def test_the_password_link_command_prints_a_link_that_replaces_earlier_ones(app, client, world, login):
    login(world.support)
    earlier = shown_link(create_admin(client, world))
    result = app.test_cli_runner().invoke(args=["password-link", "New.Admin@a.example"])
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip().removeprefix("https://portal.test")
    assert app.test_client().get(earlier).status_code == 410
    assert set_password_with(app.test_client(), printed).status_code == 302
    assert account(app, "new.admin@a.example").check_password(NEW_PASSWORD)

    missing = app.test_cli_runner().invoke(args=["password-link", "nobody@a.example"])
    assert missing.exit_code != 0 and "No account nobody@a.example." in missing.output


def test_account_changes_are_listed_to_those_who_may_see_them(app, client, world, login):
    login(world.support)
    create_admin(client, world, "new.admin@a.example")
    client.post("/people/new", data={"email": "hidden@b.example", "role": "admin", "organisation": world.b.org})
    client.post("/people/new", data={"email": "helper@ireserve.example", "role": "support"})
    everything = client.get("/people").get_data(as_text=True)
    assert "helper@ireserve.example (support)" in everything
    assert "Account created" in everything and "Set-password link issued" in everything

    client.post("/logout")
    login(world.a.admin)
    own = client.get(f"/orgs/{world.a.org}/people").get_data(as_text=True)
    assert "new.admin@a.example (admin, Alpha Rooms)" in own
    assert "hidden@b.example" not in own and "helper@ireserve.example" not in own
    audit_page = client.get(f"/orgs/{world.a.org}/audit").get_data(as_text=True)
    assert "Account created" in audit_page and "— (account)" in audit_page


def test_a_disabled_account_hears_of_no_incidents(app, client, world, login, clock):
    from app.alerts import delivery
    from app.models import Incident
    from tests.test_alerts_pages import add_incident

    login(world.support)
    client.post(f"/people/{account(app, world.a.admin).id}/disable")
    with app.app_context():
        incident = db.session.get(Incident, add_incident(clock, world.a.org))
        assert delivery.recipients(incident) == [world.support]


def test_a_changed_password_ends_the_accounts_other_sessions(app, client, world, login):
    elsewhere = app.test_client()
    elsewhere.post("/login", data={"email": world.a.admin, "password": PASSWORD})
    login(world.a.admin)
    client.post(
        "/account/password",
        data={"current_password": PASSWORD, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
    )
    assert client.get(f"/orgs/{world.a.org}").status_code == 200, "the session that changed it stays signed in"
    assert elsewhere.get(f"/orgs/{world.a.org}").status_code == 302


def test_a_password_set_from_a_reset_link_ends_the_accounts_sessions(app, client, world, login):
    elsewhere = app.test_client()
    elsewhere.post("/login", data={"email": world.a.admin, "password": PASSWORD})
    login(world.support)
    target = account(app, world.a.admin)
    path = shown_link(client.post(f"/people/{target.id}/link", data={"delivery": "show"}))
    assert elsewhere.get(f"/orgs/{world.a.org}").status_code == 200, "issuing a link alone signs nobody out"
    assert set_password_with(app.test_client(), path).status_code == 302
    assert elsewhere.get(f"/orgs/{world.a.org}").status_code == 302
