"""Every response of the portal carries the browser hardening headers; the sign-in cookies carry their flags."""

import re

import pytest
import responses

from app import create_app
from app.api.bearer_tokens import create_token
from app.extensions import db
from app.models import Integration
from tests.admin_helpers import add_rooms_integration
from tests.conftest import PASSWORD, config_for

# Markup a script-src without 'unsafe-inline' would silently break.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)


def policy(response):
    """The Content-Security-Policy as {directive: [sources]}."""
    directives = {}
    for part in response.headers.get("Content-Security-Policy", "").split(";"):
        if part.strip():
            name, *sources = part.split()
            directives[name] = sources
    return directives


def assert_hardened(response, where):
    csp = policy(response)
    script_sources = csp.get("script-src", csp.get("default-src"))
    assert script_sources, f"{where}: no script-src in {response.headers.get('Content-Security-Policy')!r}"
    assert "'unsafe-inline'" not in script_sources and "*" not in script_sources, where
    assert csp.get("frame-ancestors") == ["'none'"], where
    assert csp.get("object-src") == ["'none'"], where
    assert response.headers.get("X-Frame-Options") == "DENY", where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") == "same-origin", where
    assert "Strict-Transport-Security" not in response.headers, f"{where}: HSTS on a portal without secure cookies"
    if response.mimetype == "text/html":
        page = response.get_data(as_text=True)
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, INLINE_STYLE):
            assert not pattern.search(page), f"{where}: {pattern.search(page).group(0)!r} needs an inline CSP source"


@pytest.fixture
def rows(app, world):
    """One real row for each kind of id the URL map asks for; other ids point at nothing (404)."""
    with app.app_context():
        integration = add_rooms_integration(world.a, rooms=["room-1@contoso.com"])
        token, _ = create_token(world.a.org, "Website")
        db.session.commit()
        return {
            "org_id": world.a.org,
            "integration_id": integration.id,
            "link_id": integration.links["room-1@contoso.com"],
            "row_id": world.a.object,
            "token_id": token.id,
            "kind": "objects",
            "change": "disable",
            "path": "no-such-resource",
            "filename": "js/copy.js",
        }


def every_rule(app):
    """Each rule of the URL map once, sign-out last so the others run signed in."""
    return sorted(app.url_map.iter_rules(), key=lambda rule: (rule.endpoint == "auth.logout", rule.rule))


def test_every_route_carries_the_security_headers(app, client, login, world, rows):
    login(world.support)
    seen = 0
    # Any call to Microsoft a route might make fails instead of leaving the machine.
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        for rule in every_rule(app):
            methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
            method = "GET" if "GET" in methods else methods[0]
            path = rule.build({name: rows.get(name, 1) for name in rule.arguments})[1]
            response = client.open(path, method=method)
            where = f"{method} {path} ({rule.endpoint}, {response.status_code})"
            assert response.status_code < 500, where
            assert_hardened(response, where)
            seen += 1
    assert seen == len(list(app.url_map.iter_rules()))


def test_error_answers_carry_the_security_headers(client, login, world):
    assert_hardened(client.get("/no-such-page"), "unknown page")
    assert_hardened(client.get("/api/v1/bookings"), "API without a token")
    login(world.a.admin)
    assert_hardened(client.put("/login"), "wrong method")
    assert_hardened(client.get("/orgs/999999"), "missing organisation")


def test_json_from_the_api_carries_the_security_headers(app, client, world):
    with app.app_context():
        _, secret = create_token(world.a.org, "Website")
        db.session.commit()
    response = client.get("/api/v1/objects", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200 and response.is_json
    assert_hardened(response, "API objects")


def test_the_webhook_answer_carries_the_security_headers(client):
    response = client.post("/webhooks/graph?validationToken=abc")
    assert response.status_code == 200 and response.get_data(as_text=True) == "abc"
    assert_hardened(response, "webhook validation")


def test_the_copy_buttons_load_their_script_from_the_portal(app, client, login, world):
    with app.app_context():
        integration = add_rooms_integration(world.a)
        assert db.session.get(Integration, integration.id)
    login(world.a.admin)
    page = client.get(integration.base).get_data(as_text=True)
    assert 'data-copy="notification-url"' in page
    assert re.search(r'<script src="/static/js/copy\.js[^"]*" defer></script>', page)
    assert "'self'" in policy(client.get(integration.base))["script-src"]


@pytest.fixture
def secure_app(database_url, instance_dir):
    """The portal as served over HTTPS: secure session cookie."""
    app = create_app(config_for(database_url, SESSION_COOKIE_SECURE=True), instance_path=instance_dir)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_https_portals_send_hsts(secure_app, world):
    client = secure_app.test_client()
    for response in (client.get("/login"), client.get("/api/v1/objects"), client.post("/webhooks/graph")):
        hsts = response.headers.get("Strict-Transport-Security", "")
        assert re.fullmatch(r"max-age=\d{8,}", hsts), hsts


def cookie(response, name):
    """The Set-Cookie header of cookie `name`, as lower-case attributes."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return [part.strip().lower() for part in header.split(";")]
    raise AssertionError(f"no {name} cookie in {response.headers.getlist('Set-Cookie')}")


def sign_in_remembered(client, email):
    response = client.post("/login", data={"email": email, "password": PASSWORD, "remember": "y"})
    assert response.status_code == 302
    return response


def test_the_remember_me_cookie_is_same_site_and_hidden_from_scripts(client, world):
    response = sign_in_remembered(client, world.a.admin)

    remembered = cookie(response, "remember_token")
    assert "samesite=lax" in remembered and "httponly" in remembered
    assert "secure" not in remembered, "plain-http portals (development) keep working"
    session = cookie(response, "session")
    assert "samesite=lax" in session and "httponly" in session


def test_on_https_the_remember_me_cookie_is_secure_like_the_session(secure_app, world):
    response = sign_in_remembered(secure_app.test_client(), world.a.admin)

    assert "secure" in cookie(response, "remember_token")
    assert "secure" in cookie(response, "session")
