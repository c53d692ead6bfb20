"""Who is calling Graph, which mailbox they name, and whether they may.

The rules follow the two token types:

* a **delegated** token acts as one signed-in user: `me/...` is that user's mailbox, and
  `users/{upn}/...` works only for the same user (anything else is access denied);
* an **app-only** token (client credentials) has no user: `me` is a 400, and
  `users/{upn}/...` reaches every mailbox of its tenant except those an application
  access policy excludes, which answer `ErrorAccessDenied` "Access to OData is disabled.".

Reads need `Calendars.Read` or `Calendars.ReadWrite` (delegated scope or application
permission); writes need `Calendars.ReadWrite`.
"""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, jsonify, request
from werkzeug.http import parse_list_header

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
READ_SCOPES = frozenset({"calendars.read", "calendars.readwrite"})
WRITE_SCOPES = frozenset({"calendars.readwrite"})
DENIED = "Access is denied. Check credentials and try again."


class GraphProblem(Exception):
    """An error answer in Graph's shape: ``{"error": {"code", "message", "innerError"}}``."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def world():
    return current_app.extensions["fakegraph"]


def request_ids():
    """Graph's request-id for this answer, and the caller's client-request-id echoed."""
    if "fakegraph.request_id" not in request.environ:
        request.environ["fakegraph.request_id"] = str(uuid.uuid4())
    return request.environ["fakegraph.request_id"], request.headers.get("client-request-id")


def problem_response(problem):
    request_id, client_request_id = request_ids()
    inner = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": request_id}
    if client_request_id:
        inner["client-request-id"] = client_request_id
    response = jsonify({"error": {"code": problem.code, "message": problem.message, "innerError": inner}})
    response.status_code = problem.status
    response.headers.update(problem.headers)
    return response


@dataclass(frozen=True)
class Principal:
    """The caller behind an access token."""

    tenant_id: str
    client_id: str
    upn: str | None
    scopes: frozenset

    @property
    def app_only(self):
        return self.upn is None

    @property
    def label(self):
        return f"app:{self.client_id}" if self.app_only else self.upn


def authenticate():
    """The :class:`Principal` of the request's bearer token; 401 when there is no valid one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Access token is empty.")
    the_world = world()
    with the_world.lock:
        grant = the_world.grants.get(token.strip())
        if grant is None or grant.kind != "access":
            raise _unauthorized("Access token validation failure. Invalid audience.")
        if grant.revoked:
            raise _unauthorized("Access token has been revoked.")
        if the_world.now() >= grant.expires_at:
            raise _unauthorized("Lifetime validation failed, the token is expired.")
        if grant.app_only:
            app = the_world.app(grant.tenant_id, grant.client_id)
            scopes = frozenset(p.lower() for p in (app.permissions if app else ()))
        else:
            scopes = frozenset(s.lower() for s in grant.scopes)
        return Principal(grant.tenant_id, grant.client_id, grant.upn, scopes)


def _unauthorized(message):
    login = request.url_root + "login/common/oauth2/authorize"
    challenge = f'Bearer realm="", authorization_uri="{login}", client_id="{GRAPH_APP_ID}"'
    return GraphProblem(401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": challenge})


def resolve_mailbox(principal, user):
    """The mailbox `me` (*user* None) or `users/{user}` names; 400 or 404 when there is none."""
    the_world = world()
    if user is None:
        if principal.app_only:
            raise GraphProblem(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        return the_world.mailbox(principal.upn)
    mailbox = the_world.mailbox(user)
    if mailbox is None or mailbox.tenant_id != principal.tenant_id:
        raise GraphProblem(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
    return mailbox


def check_calendar_access(principal, mailbox, *, write=False):
    """403 unless *principal* may read (or write) *mailbox*'s calendar."""
    if principal.app_only and mailbox.app_only_denied:
        raise GraphProblem(403, "ErrorAccessDenied", "Access to OData is disabled.")
    if not principal.app_only and principal.upn != mailbox.upn:
        raise GraphProblem(403, "ErrorAccessDenied", DENIED)
    if not principal.scopes & (WRITE_SCOPES if write else READ_SCOPES):
        raise GraphProblem(403, "ErrorAccessDenied", DENIED)


def preferences():
    """The request's `Prefer` header as {lower-case name: value}, quotes removed."""
    found = {}
    for part in parse_list_header(request.headers.get("Prefer", "")):
        name, _, value = part.partition("=")
        found[name.strip().lower()] = value.strip().strip('"')
    return found


def delay(mailbox_upn):
    """Sleep for the injected latency of this request (none for items of a `$batch`: the batch had it)."""
    if request.environ.get("fakegraph.batch_item"):
        return
    seconds = world().faults.latency_for(mailbox_upn)
    if seconds:
        time.sleep(seconds)


def admit(mailbox_upn):
    """Injected latency and throttling, as they would hit this request.

    *mailbox_upn* is the request's mailbox, or None for requests that name none (those
    meet only the rules for all mailboxes).
    """
    delay(mailbox_upn)
    rule = world().faults.take_throttle(mailbox_upn)
    if rule is not None:
        code = "TooManyRequests" if rule.status == 429 else "ServiceUnavailable"
        raise GraphProblem(rule.status, code, "Please retry again later.", {"Retry-After": f"{rule.retry_after:g}"})
