import re
from datetime import timedelta

from app.api.bearer_tokens import create_token, find_active_token, hash_token
from app.extensions import db
from app.models import ApiToken, User
from tests.conftest import config_for


def tokens_of(app, org_id):
    with app.app_context():
        return db.session.scalars(db.select(ApiToken).where(ApiToken.organisation_id == org_id)).all()


def shown_token(response):
    found = re.search(r'<code id="api-token">(ireserve_[^<]+)</code>', response.get_data(as_text=True))
    return found.group(1) if found else None


def test_a_new_token_is_shown_once_and_stored_only_as_its_hash(app, login, world):
    client = login(world.a.admin)
    response = client.post(f"/orgs/{world.a.org}/api-tokens/new", data={"name": "Website"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = shown_token(response)
    assert secret and len(secret) > 40
    assert 'data-copy="api-token"' in response.get_data(as_text=True)

    (token,) = tokens_of(app, world.a.org)
    assert token.name == "Website"
    assert token.token_hash == hash_token(secret) != secret
    assert secret.startswith(token.prefix) and len(token.prefix) == 16
    with app.app_context():
        stored = db.session.execute(db.text("SELECT token_hash, prefix, name FROM api_tokens")).one()
        user_id = db.session.scalar(db.select(User.id).where(User.email == world.a.admin))
    assert secret not in " ".join(stored)
    assert token.created_by_id == user_id

    listing = client.get(f"/orgs/{world.a.org}/api-tokens").get_data(as_text=True)
    assert "Website" in listing and token.prefix in listing
    assert secret not in listing
    assert secret not in client.get(f"/orgs/{world.a.org}/api-tokens/{token.id}/revoke").get_data(as_text=True)


def test_a_token_needs_a_name(app, login, world):
    client = login(world.a.admin)
    response = client.post(f"/orgs/{world.a.org}/api-tokens/new", data={"name": "  "})
    assert response.status_code == 200
    assert shown_token(response) is None
    assert 'id="name-error">Enter a name.' in response.get_data(as_text=True)
    assert tokens_of(app, world.a.org) == []


def test_revoking_asks_first_then_refuses_the_token(app, login, world, clock):
    client = login(world.a.admin)
    secret = shown_token(client.post(f"/orgs/{world.a.org}/api-tokens/new", data={"name": "Kiosk"}))
    (token,) = tokens_of(app, world.a.org)
    assert client.get("/api/v1/statuses", headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    confirm = client.get(f"/orgs/{world.a.org}/api-tokens/{token.id}/revoke")
    assert "Revoke token Kiosk?" in confirm.get_data(as_text=True)
    assert tokens_of(app, world.a.org)[0].revoked_at is None

    clock.advance(timedelta(minutes=5))
    response = client.post(f"/orgs/{world.a.org}/api-tokens/{token.id}/revoke")
    assert response.status_code == 302
    assert tokens_of(app, world.a.org)[0].revoked_at == clock.now
    refused = client.get("/api/v1/statuses", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
    assert "revoked" in client.get(f"/orgs/{world.a.org}/api-tokens").get_data(as_text=True)


def test_last_use_is_recorded_at_most_once_a_minute(app, client, world, clock):
    with app.app_context():
        token, secret = create_token(world.a.org, "Sync")
        db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    client.get("/api/v1/objects", headers=headers)
    assert tokens_of(app, world.a.org)[0].last_used_at == clock.now
    first_use = clock.now
    clock.advance(timedelta(seconds=30))
    client.get("/api/v1/objects", headers=headers)
    assert tokens_of(app, world.a.org)[0].last_used_at == first_use
    clock.advance(timedelta(seconds=31))
    client.get("/api/v1/objects", headers=headers)
    assert tokens_of(app, world.a.org)[0].last_used_at == clock.now


def test_lookup_finds_only_active_tokens_by_their_whole_secret(app, world):
    with app.app_context():
        token, secret = create_token(world.a.org, "Sync")
        db.session.commit()
        assert find_active_token(secret).id == token.id
        assert find_active_token(secret[:-1]) is None
        assert find_active_token(token.token_hash) is None
        assert find_active_token("") is None
        assert find_active_token("x" * 5000) is None


def test_token_pages_belong_to_their_organisation(app, login, world):
    with app.app_context():
        token, _ = create_token(world.b.org, "Beta system")
        db.session.commit()
        b_token = token.id
    client = login(world.a.admin)
    for path in (
        f"/orgs/{world.b.org}/api-tokens",
        f"/orgs/{world.b.org}/api-tokens/new",
        f"/orgs/{world.b.org}/api-tokens/{b_token}/revoke",
        # b's token under a's address is no more reachable.
        f"/orgs/{world.a.org}/api-tokens/{b_token}/revoke",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/orgs/{world.b.org}/api-tokens/new", data={"name": "Sneaky"}).status_code == 404
    assert client.post(f"/orgs/{world.a.org}/api-tokens/{b_token}/revoke").status_code == 404
    assert tokens_of(app, world.b.org)[0].revoked_at is None
    assert tokens_of(app, world.b.org)[0].name == "Beta system"
    assert "Beta system" not in client.get(f"/orgs/{world.a.org}/api-tokens").get_data(as_text=True)


def test_support_staff_manage_any_organisations_tokens(app, login, world):
    client = login(world.support)
    response = client.post(f"/orgs/{world.b.org}/api-tokens/new", data={"name": "Support made"})
    assert shown_token(response)
    assert [t.name for t in tokens_of(app, world.b.org)] == ["Support made"]


def test_the_overview_links_to_the_token_pages(login, world):
    page = login(world.a.admin).get(f"/orgs/{world.a.org}").get_data(as_text=True)
    assert f"/orgs/{world.a.org}/api-tokens" in page


def test_token_forms_are_protected_against_cross_site_requests(app, world, database_url, instance_dir):
    from app import create_app

    strict_app = create_app(config_for(database_url, WTF_CSRF_ENABLED=True), instance_path=instance_dir)
    client = strict_app.test_client()
    with strict_app.app_context():
        user_id = db.session.scalar(db.select(User.id).where(User.email == world.a.admin))
        token, secret = create_token(world.a.org, "Existing")
        db.session.commit()
        token_id = token.id
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(user_id)
        flask_session["_fresh"] = True

    assert client.post(f"/orgs/{world.a.org}/api-tokens/new", data={"name": "Forged"}).status_code == 400
    assert client.post(f"/orgs/{world.a.org}/api-tokens/{token_id}/revoke").status_code == 400
    assert [t.name for t in tokens_of(strict_app, world.a.org)] == ["Existing"]
    assert tokens_of(strict_app, world.a.org)[0].revoked_at is None

    page = client.get(f"/orgs/{world.a.org}/api-tokens/{token_id}/revoke").get_data(as_text=True)
    csrf_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    revoked = client.post(f"/orgs/{world.a.org}/api-tokens/{token_id}/revoke", data={"csrf_token": csrf_token})
    assert revoked.status_code == 302
    assert tokens_of(strict_app, world.a.org)[0].revoked_at is not None

    # The API itself takes no cookies and needs no form token.
    api = strict_app.test_client()
    assert api.get("/api/v1/objects", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    with strict_app.app_context():
        _, fresh = create_token(world.a.org, "Fresh")
        db.session.commit()
    created = api.post(
        "/api/v1/bookings",
        json={
            "object_id": world.a.object,
            "status_id": world.a.statuses["Confirmed"],
            "start": "2026-12-01T09:00:00Z",
            "end": "2026-12-01T10:00:00Z",
        },
        headers={"Authorization": f"Bearer {fresh}"},
    )
    assert created.status_code == 201, created.get_json()
    with strict_app.app_context():
        db.engine.dispose()
