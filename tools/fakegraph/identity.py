"""The identity platform v2.0: the authorize page and the token endpoint.

* `GET /login/{tenant}/oauth2/v2.0/authorize` shows a consent page: pick the account to
  sign in as, then Accept (a redirect with `code` and `state`) or Decline (a redirect with
  `error=access_denied` and AADSTS65004). Unknown tenants, apps and redirect URIs get an
  error page instead, as Microsoft shows one rather than redirecting anywhere.
* `POST /login/{tenant}/oauth2/v2.0/token` redeems an authorization code (PKCE checked,
  one use, ten minutes), a refresh token (a new one on every use) or client credentials
  (`.default` only, no refresh token), and answers errors in Microsoft's shape:
  `{error, error_description: "AADSTS…", error_codes, timestamp, trace_id, correlation_id}`.

Used refresh tokens stay valid, as Microsoft's do, unless the `strict_refresh_rotation`
setting revokes them on use. Tokens are opaque random strings; the world maps each to its
tenant, app, user (none for app-only) and expiry.
"""

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, jsonify, redirect, render_template, request

from .access import world
from .state import USER, AuthCode, Grant

bp = Blueprint("identity", __name__, url_prefix="/login")

GRAPH_RESOURCE = "https://graph.microsoft.com/"
GRAPH_DEFAULT_SCOPES = ("https://graph.microsoft.com/.default", "00000003-0000-0000-c000-000000000000/.default")
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
CODE_LIFETIME = timedelta(minutes=10)
ANY_TENANT = ("common", "organizations")


class Refusal(Exception):
    """An OAuth error answer: HTTP status, OAuth `error`, AADSTS number and text."""

    def __init__(self, status, error, code, text):
        super().__init__(text)
        self.status, self.error, self.code, self.text = status, error, code, text


# -- authorize -------------------------------------------------------------------------


@bp.route("/<tenant_ref>/oauth2/v2.0/authorize", methods=["GET", "POST"])
def authorize(tenant_ref):
    params = request.values
    try:
        tenant, app = _tenant_and_app(tenant_ref, params.get("client_id"))
        redirect_uri = _redirect_uri(app, params.get("redirect_uri"))
    except Refusal as refusal:
        return render_template("login_error.html", refusal=refusal), refusal.status
    state = params.get("state")
    problem = _authorize_problem(params)
    if problem is not None:
        return _back(redirect_uri, state, error=problem.error, error_description=_description(problem))
    if request.method == "GET":
        users = [m for m in world().mailboxes_of(tenant.id) if m.kind == USER]
        hidden = {name: value for name, value in params.items() if name not in ("account", "decision")}
        hint = (params.get("login_hint") or world().settings.consent_account or "").lower()
        return render_template(
            "consent.html",
            tenant=tenant,
            app=app,
            users=users,
            hidden=hidden,
            hint=hint,
            scopes=_scopes(params.get("scope")),
        )
    if request.form.get("decision") != "accept":
        declined = Refusal(400, "access_denied", 65004, "User declined to consent to access the app.")
        return _back(redirect_uri, state, error=declined.error, error_description=_description(declined))
    account = world().mailbox(request.form.get("account"))
    if account is None or account.tenant_id != tenant.id or account.kind != USER:
        missing = Refusal(400, "invalid_request", 50034, "The user account does not exist in the directory.")
        return render_template("login_error.html", refusal=missing), 400
    code = _issue_code(tenant, app, account, redirect_uri, params)
    return _back(redirect_uri, state, code=code, session_state=str(uuid.uuid4()))


def _authorize_problem(params):
    if params.get("response_type") != "code":
        return Refusal(400, "unsupported_response_type", 700054, "response_type must be 'code' here.")
    if not params.get("scope"):
        return Refusal(
            400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
        )
    method = params.get("code_challenge_method")
    if params.get("code_challenge") and method not in (None, "", "S256", "plain"):
        return Refusal(400, "invalid_request", 501491, f"Invalid code_challenge_method {method!r}.")
    return None


def _issue_code(tenant, app, account, redirect_uri, params):
    the_world = world()
    with the_world.lock:
        code = secrets.token_urlsafe(32)
        the_world.codes[code] = AuthCode(
            value=code,
            tenant_id=tenant.id,
            client_id=app.client_id,
            upn=account.upn,
            redirect_uri=redirect_uri,
            scopes=_scopes(params.get("scope")),
            challenge=params.get("code_challenge") or None,
            challenge_method=params.get("code_challenge_method") or ("plain" if params.get("code_challenge") else None),
            expires_at=the_world.now() + CODE_LIFETIME,
        )
    return code


def _back(redirect_uri, state, **values):
    if state is not None:
        values["state"] = state
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return redirect(f"{redirect_uri}{separator}{urlencode(values)}", code=302)


def _redirect_uri(app, given):
    if not given:
        raise Refusal(400, "invalid_request", 900144, "The request must contain the parameter 'redirect_uri'.")
    if app.redirect_uris and given not in app.redirect_uris:
        raise Refusal(
            400,
            "invalid_request",
            50011,
            f"The redirect URI '{given}' specified in the request does not match the redirect URIs configured for "
            f"the application '{app.client_id}'.",
        )
    return given


# -- token -----------------------------------------------------------------------------


@bp.route("/<tenant>/oauth2/v2.0/token", methods=["POST"])
def token(tenant):
    form = request.form
    try:
        the_tenant, app = _tenant_and_app(tenant, _client_id(form))
        _authenticate_client(app, form)
        grant_type = form.get("grant_type")
        the_world = world()
        with the_world.lock:
            if grant_type == "authorization_code":
                answer = _redeem_code(the_tenant, app, form)
            elif grant_type == "refresh_token":
                answer = _redeem_refresh_token(app, form)
            elif grant_type == "client_credentials":
                answer = _client_credentials(the_tenant, app, form)
            else:
                raise Refusal(
                    400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
                )
    except Refusal as refusal:
        return _refused(refusal)
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _client_id(form):
    user, _ = _basic_credentials()
    return form.get("client_id") or user


def _basic_credentials():
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, password


def _authenticate_client(app, form):
    _, basic_secret = _basic_credentials()
    secret = form.get("client_secret") or basic_secret
    if not secret:
        raise Refusal(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    if not hmac.compare_digest(secret.encode(), app.secret.encode()):
        raise Refusal(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
            f"value, not the client secret ID, for a secret added to app '{app.client_id}'.",
        )


def _redeem_code(tenant, app, form):
    the_world = world()
    code = the_world.codes.get(form.get("code") or "")
    if code is None or code.tenant_id != tenant.id or code.client_id != app.client_id:
        raise Refusal(400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid.")
    if code.redeemed:
        raise Refusal(
            400,
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing "
            "refresh token.",
        )
    if the_world.now() >= code.expires_at:
        raise Refusal(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new "
            "interactive authorization request for this user and resource.",
        )
    if form.get("redirect_uri") != code.redirect_uri:
        raise Refusal(
            400,
            "invalid_grant",
            500112,
            f"The reply address '{form.get('redirect_uri')}' does not match the reply address "
            f"'{code.redirect_uri}' provided when requesting Authorization code.",
        )
    _check_pkce(code, form.get("code_verifier"))
    code.redeemed = True
    return _delegated_answer(app, code.upn, code.scopes)


def _check_pkce(code, verifier):
    if code.challenge is None:
        return
    if not verifier:
        raise Refusal(
            400, "invalid_request", 900144, "The request body must contain the following parameter: 'code_verifier'."
        )
    if code.challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        derived = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    else:
        derived = verifier
    if not hmac.compare_digest(derived, code.challenge):
        raise Refusal(
            400,
            "invalid_grant",
            50148,
            "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
        )


def _redeem_refresh_token(app, form):
    the_world = world()
    grant = the_world.grants.get(form.get("refresh_token") or "")
    if grant is None or grant.kind != "refresh":
        raise Refusal(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
    if grant.client_id != app.client_id:
        raise Refusal(400, "invalid_grant", 70000, "The refresh token was issued to a different client.")
    if grant.revoked:
        raise Refusal(
            400,
            "invalid_grant",
            50173,
            "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might "
            "have changed or reset their password.",
        )
    now = the_world.now()
    if now >= grant.expires_at:
        days = the_world.settings.refresh_inactivity_days
        raise Refusal(
            400,
            "invalid_grant",
            700082,
            f"The refresh token has expired due to inactivity. The token was issued on "
            f"{grant.issued_at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} and was inactive for {days}.00:00:00.",
        )
    asked = _scopes(form.get("scope")) if form.get("scope") else grant.scopes
    beyond = {s.lower() for s in asked} - {s.lower() for s in grant.scopes} - OIDC_SCOPES
    if beyond:
        raise Refusal(
            400,
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID '{app.client_id}' "
            f"for {sorted(beyond)}.",
        )
    grant.last_used = now
    # Inactivity counts from the last use, so a token in use never expires.
    grant.expires_at = now + timedelta(days=the_world.settings.refresh_inactivity_days)
    if the_world.settings.strict_refresh_rotation:
        grant.revoked = True
    return _delegated_answer(app, grant.upn, grant.scopes)


def _client_credentials(tenant, app, form):
    scope = (form.get("scope") or "").strip()
    if scope not in GRAPH_DEFAULT_SCOPES:
        raise Refusal(
            400,
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
        )
    access = _grant("access", app, None, tuple(sorted(app.permissions)))
    return {
        "token_type": "Bearer",
        "expires_in": _lifetime(),
        "ext_expires_in": _lifetime(),
        "access_token": access.value,
    }


def _delegated_answer(app, upn, scopes):
    access = _grant("access", app, upn, scopes)
    answer = {
        "token_type": "Bearer",
        "scope": " ".join(GRAPH_RESOURCE + s for s in scopes if s.lower() not in OIDC_SCOPES),
        "expires_in": _lifetime(),
        "ext_expires_in": _lifetime(),
        "access_token": access.value,
    }
    lowered = {s.lower() for s in scopes}
    if "offline_access" in lowered:
        answer["refresh_token"] = _grant("refresh", app, upn, scopes).value
    if "openid" in lowered:
        answer["id_token"] = _id_token(app, upn)
    return answer


def _grant(kind, app, upn, scopes):
    the_world = world()
    now = the_world.now()
    if kind == "access":
        expires_at = now + timedelta(seconds=the_world.settings.access_token_seconds)
    else:
        expires_at = now + timedelta(days=the_world.settings.refresh_inactivity_days)
    grant = Grant(
        value=secrets.token_urlsafe(48),
        kind=kind,
        tenant_id=app.tenant_id,
        client_id=app.client_id,
        upn=upn,
        scopes=tuple(scopes),
        issued_at=now,
        expires_at=expires_at,
        last_used=now,
    )
    the_world.grants[grant.value] = grant
    return grant


def _id_token(app, upn):
    """An unsigned JWT with the usual claims (`preferred_username`, `name`, `oid`, `tid`, `aud`, ...).

    The product reads the account it shows from these claims instead of calling `GET me`.
    """
    the_world = world()
    mailbox = the_world.mailbox(upn)
    now = int(the_world.now().timestamp())
    claims = {
        "aud": app.client_id,
        "iss": f"{request.url_root}login/{app.tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + _lifetime(),
        "name": mailbox.display_name,
        "oid": mailbox.object_id,
        "preferred_username": mailbox.upn,
        "tid": app.tenant_id,
        "ver": "2.0",
    }

    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}."


def _lifetime():
    return world().settings.access_token_seconds


# -- shared ----------------------------------------------------------------------------


def _tenant_and_app(tenant_ref, client_id):
    the_world = world()
    if not client_id:
        raise Refusal(
            400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
        )
    if (tenant_ref or "").lower() in ANY_TENANT:
        app = next((a for a in the_world.apps.values() if a.client_id == client_id.lower()), None)
        tenant = the_world.tenants.get(app.tenant_id) if app else None
    else:
        tenant = the_world.tenant(tenant_ref)
        if tenant is None:
            raise Refusal(400, "invalid_request", 90002, f"Tenant '{tenant_ref}' not found.")
        app = the_world.app(tenant.id, client_id)
    if app is None:
        raise Refusal(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant_ref}'.",
        )
    return tenant, app


def _scopes(text):
    """Requested scopes without the Graph resource prefix: `Calendars.ReadWrite`, `offline_access`."""
    found = []
    for scope in (text or "").split():
        name = scope[len(GRAPH_RESOURCE) :] if scope.lower().startswith(GRAPH_RESOURCE) else scope
        if name == ".default":
            found.extend(["Calendars.ReadWrite", "User.Read"])
        else:
            found.append(name)
    return tuple(dict.fromkeys(found))


def _description(refusal):
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return (
        f"AADSTS{refusal.code}: {refusal.text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\n"
        f"Timestamp: {stamp}"
    )


def _refused(refusal):
    description = _description(refusal)
    trace = description.split("Trace ID: ")[1].split("\r\n")[0]
    correlation = description.split("Correlation ID: ")[1].split("\r\n")[0]
    response = jsonify(
        {
            "error": refusal.error,
            "error_description": description,
            "error_codes": [refusal.code],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{request.url_root}login/error?code={refusal.code}",
        }
    )
    response.status_code = refusal.status
    return response


# -- what the control API does to tokens -----------------------------------------------


def expire_tokens(the_world, *, upn=None, client_id=None, refresh=False):
    """Make matching access tokens (and refresh tokens, if asked) expired now; returns how many."""
    count = 0
    with the_world.lock:
        now = the_world.now()
        for grant in the_world.grants.values():
            if grant.kind == "refresh" and not refresh:
                continue
            if upn and grant.upn != upn.lower():
                continue
            if client_id and grant.client_id != client_id.lower():
                continue
            if grant.expires_at > now:
                grant.expires_at = now
                count += 1
    return count


def revoke_tokens(the_world, upn):
    """What a password reset does: every token of the user stops working (AADSTS50173)."""
    count = 0
    with the_world.lock:
        for grant in the_world.grants.values():
            if grant.upn == upn.lower() and not grant.revoked:
                grant.revoked = True
                count += 1
    return count
