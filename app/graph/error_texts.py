"""What a Graph or sign-in error means to a person, and what they can do about it.

Errors reach the portal in several shapes: a :class:`~app.graph.errors.GraphError` or
:class:`~app.graph.tokens.TokenError` while a request runs, and afterwards only the text
stored from it (a room's last error, a job's ``last_error``, a sync log line, the
integration's connection error, a connection test report). :func:`explain` turns any of
them into one :class:`ErrorText`, so every page words the same failure the same way and
support still finds the raw code, request id and URL behind it.

Stored texts are parsed defensively: they were written by different versions of the code
(``"Graph 403 ErrorAccessDenied: … (GET https://…; request-id …)"``, ``"GraphForbidden:
Graph 403 …"`` on jobs, ``"The client secret is wrong (AADSTS7000215)"`` on integrations,
``"HTTP 404: …"`` in older reports), and an unrecognised text still gets a sentence that
says what to do.
"""

import re
from dataclasses import dataclass

from app.graph.errors import GraphError
from app.graph.tokens import NO_SECRET_REASON, OAUTH_ERROR_REASONS, ReconnectRequired, TokenError

SIGN_IN_EXPIRED = "sign_in_expired"
SIGN_IN_BLOCKED = "sign_in_blocked"
APP_NOT_FOUND = "app_not_found"
SECRET_INVALID = "secret_invalid"
CONSENT_MISSING = "consent_missing"
ACCESS_DENIED = "access_denied"
MAILBOX_NOT_FOUND = "mailbox_not_found"
MAILBOX_NOT_ENABLED = "mailbox_not_enabled"
THROTTLED = "throttled"
UNAVAILABLE = "unavailable"
SYNC_STATE_EXPIRED = "sync_state_expired"
SUBSCRIPTION_VALIDATION = "subscription_validation"
UNKNOWN = "unknown"

CONTACT_SUPPORT = "If it happens again, contact support and give them the details below."

#: kind -> (plain sentence, what to do). The access-denied sentence is the one *Test
#: connection* has always shown; support staff know it from there.
TEXTS = {
    SIGN_IN_EXPIRED: (
        "Microsoft no longer accepts the sign-in: the token is invalid, expired or was revoked.",
        "Reconnect: sign in with Microsoft again on the integration page (for an application integration, "
        "test the connection).",
    ),
    SIGN_IN_BLOCKED: (
        "Microsoft blocked the sign-in: Conditional Access or multi-factor authentication requires more.",
        "Sign in again interactively; if it stays blocked, ask the tenant administrator to allow the app "
        "in the Conditional Access policy.",
    ),
    APP_NOT_FOUND: (
        "Microsoft does not know this app in the tenant.",
        "Check the client id and the tenant id in the integration's settings against the app registration in Azure.",
    ),
    SECRET_INVALID: (
        "Microsoft refused the client secret: it is wrong or has expired.",
        "Create a new client secret in the app registration in Azure, enter it in the settings and save.",
    ),
    CONSENT_MISSING: (
        "The app has no admin consent for the permissions it needs.",
        "Have a tenant administrator grant admin consent for the app in Azure, then test the connection again.",
    ),
    ACCESS_DENIED: (
        "Access denied: the tenant's application access policy or RBAC scope excludes this mailbox.",
        "Ask the Exchange administrator to include the mailbox in the app's application access policy or "
        "RBAC for Applications scope, and check that the app has admin consent for Calendars.ReadWrite.",
    ),
    MAILBOX_NOT_FOUND: (
        "Microsoft found no mailbox (or calendar item) at this address.",
        "Check the room's UPN (its e-mail address) in the room's settings.",
    ),
    MAILBOX_NOT_ENABLED: (
        "The mailbox is inactive, soft-deleted or hosted on-premises, so Microsoft Graph cannot read it.",
        "Check in the Microsoft 365 admin center that the mailbox exists in Exchange Online, or remove the room.",
    ),
    THROTTLED: (
        "Microsoft asked the app to slow down (throttling).",
        "Nothing to do: the call is retried automatically.",
    ),
    UNAVAILABLE: (
        "Microsoft was temporarily unavailable or did not answer in time.",
        "Nothing to do: the call is retried automatically. If it lasts for hours, check the Microsoft 365 "
        "service health page.",
    ),
    SYNC_STATE_EXPIRED: (
        "Microsoft no longer knew how far the last sync had got.",
        "Nothing to do: a full sync was started automatically; no booking is lost.",
    ),
    SUBSCRIPTION_VALIDATION: (
        "Microsoft could not reach the notification URL to confirm the change subscription.",
        "Check that PUBLIC_BASE_URL is the portal's public https address and reachable from the internet; "
        "until then changes are picked up by polling.",
    ),
    UNKNOWN: (
        "Something went wrong that the portal does not recognise.",
        f"Try again. {CONTACT_SUPPORT}",
    ),
}

#: AADSTS numbers (graph-notes.md, section 6.4) by kind.
_AADSTS_KINDS = {
    **dict.fromkeys((70008, 700082, 700084, 50173, 54005), SIGN_IN_EXPIRED),
    **dict.fromkeys((50076, 50079, 53003, 70043), SIGN_IN_BLOCKED),
    **dict.fromkeys((700016, 90002, 500011), APP_NOT_FOUND),
    **dict.fromkeys((7000215, 7000218, 7000222), SECRET_INVALID),
    **dict.fromkeys((65001, 65004, 90094), CONSENT_MISSING),
}
#: The OAuth ``error`` values and the reasons app.graph.tokens stores for them.
_OAUTH_KINDS = {
    "invalid_grant": SIGN_IN_EXPIRED,
    "interaction_required": SIGN_IN_BLOCKED,
    "login_required": SIGN_IN_BLOCKED,
    "invalid_client": SECRET_INVALID,
    "unauthorized_client": APP_NOT_FOUND,
    "consent_required": CONSENT_MISSING,
    "temporarily_unavailable": UNAVAILABLE,
    "server_error": UNAVAILABLE,
}
_REASON_KINDS = {
    OAUTH_ERROR_REASONS[error].lower(): kind for error, kind in _OAUTH_KINDS.items() if error in OAUTH_ERROR_REASONS
}
_REASON_KINDS[NO_SECRET_REASON.lower()] = SECRET_INVALID

# Graph and Exchange codes, compared in lower case: they spell them differently.
SYNC_STATE_CODES = frozenset({"syncstatenotfound", "resyncrequired", "graphsyncstateexpired"})
NOT_ENABLED_CODES = frozenset({"mailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi"})
NOT_FOUND_CODES = frozenset(
    {"erroritemnotfound", "itemnotfound", "resourcenotfound", "errornonexistentmailbox", "errorinvaliduser"}
)
ACCESS_DENIED_CODES = frozenset({"erroraccessdenied", "accessdenied", "authorization_requestdenied"})
THROTTLED_CODES = frozenset({"toomanyrequests", "applicationthrottled", "errortoomanyobjectsopened"})
SIGN_IN_CODES = frozenset({"invalidauthenticationtoken", "compacttoken.parsing.failed"})
UNAVAILABLE_CODES = frozenset({"serviceunavailable", "generalexception", "errorinternalservererror", "timeout"})
# Exception class names: jobs keep them in front of the message ("GraphForbidden: …").
_CLASS_KINDS = {
    "graphautherror": SIGN_IN_EXPIRED,
    "graphforbidden": ACCESS_DENIED,
    "graphnotfound": MAILBOX_NOT_FOUND,
    "graphthrottled": THROTTLED,
    "graphservererror": UNAVAILABLE,
    "graphtransporterror": UNAVAILABLE,
    "tokenserviceunavailable": UNAVAILABLE,
}
_VALIDATION_PHRASES = (
    "validation request failed",
    "subscription validation",
    "notification endpoint",
    "notificationurl",
)
_TIMEOUT_PHRASES = ("timed out", "timeout", "no answer", "connection refused", "connection aborted", "unavailable")

_AADSTS = re.compile(r"AADSTS(\d+)")
_STATUS = re.compile(r"\b(?:Graph|HTTP|status|answered)\s+([1-5]\d\d)\b|\(([1-5]\d\d)\)", re.IGNORECASE)
_GRAPH_CODE = re.compile(r"\bGraph(?:\s+\d{3})?\s+([A-Za-z][\w.]+):")
# A Graph code ("ErrorInvalidUser: …") or an OAuth error ("invalid_grant: …"), not an exception's class name.
_LEADING_CODE = re.compile(r"^(Error[A-Za-z]+|[a-z]+_[a-z_]+):")
_REQUEST_ID = re.compile(r"request-id[\s:=]+([0-9A-Za-z-]{8,})", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s;)\"'<>]+")
_WORD = re.compile(r"[A-Za-z][\w.]*")


@dataclass(frozen=True)
class ErrorText:
    """One error as the portal shows it: a sentence, what to do, and the raw facts for support."""

    kind: str
    raw: str
    code: str | None = None
    status: int | None = None
    request_id: str | None = None
    url: str | None = None

    @property
    def sentence(self):
        return TEXTS[self.kind][0]

    @property
    def action(self):
        return TEXTS[self.kind][1]


def explain(error):
    """The :class:`ErrorText` for *error*: a GraphError, a TokenError or a stored text; ``None`` for no error."""
    if error is None or error == "":
        return None
    if isinstance(error, ErrorText):
        return error
    if isinstance(error, GraphError):
        return _from_graph_error(error)
    if isinstance(error, ReconnectRequired) and error.aadsts:
        return ErrorText(_AADSTS_KINDS.get(error.aadsts, SIGN_IN_EXPIRED), str(error), code=f"AADSTS{error.aadsts}")
    if isinstance(error, TokenError):
        parsed = explain_text(str(error))
        if parsed.kind == UNKNOWN:
            kind = UNAVAILABLE if error.is_transient else SIGN_IN_EXPIRED
            return ErrorText(kind, parsed.raw)
        return parsed
    return explain_text(str(error))


def explain_text(text):
    """The :class:`ErrorText` of a stored error text, whichever part of the code wrote it."""
    raw = " ".join(str(text).split())
    aadsts = _AADSTS.search(raw)
    status_match = _STATUS.search(raw)
    status = int(status_match.group(1) or status_match.group(2)) if status_match else None
    code = _code_in(raw)
    if aadsts:
        code = f"AADSTS{aadsts.group(1)}"
    request_id = _REQUEST_ID.search(raw)
    url = _URL.search(raw)
    return ErrorText(
        _kind_of_text(raw, status, aadsts),
        raw,
        code=code,
        status=status,
        request_id=request_id.group(1) if request_id else None,
        url=url.group(0) if url else None,
    )


def _from_graph_error(error):
    return ErrorText(
        _kind(error.status, _codes_of(error), error.message.lower()),
        str(error),
        code=error.code,
        status=error.status,
        request_id=error.request_id,
        url=error.url,
    )


def _kind_of_text(raw, status, aadsts):
    lower = raw.lower()
    if aadsts and int(aadsts.group(1)) in _AADSTS_KINDS:
        return _AADSTS_KINDS[int(aadsts.group(1))]
    words = {word.lower() for word in _WORD.findall(raw)}
    for word, kind in _OAUTH_KINDS.items():
        if word in words:
            return kind
    for reason, kind in _REASON_KINDS.items():
        if reason in lower:
            return kind
    if aadsts:
        return SIGN_IN_EXPIRED  # another refusal at sign-in: signing in again is what can be done
    return _kind(status, words, lower)


def _codes_of(error):
    # The class counts as a code: a GraphTransportError has no status and no Graph code.
    return {type(error).__name__.lower()} | ({error.code.lower()} if error.code else set())


def _kind(status, codes, message):
    if codes & SYNC_STATE_CODES or status == 410:
        return SYNC_STATE_EXPIRED
    if codes & NOT_ENABLED_CODES:
        return MAILBOX_NOT_ENABLED
    if any(phrase in message for phrase in _VALIDATION_PHRASES):
        return SUBSCRIPTION_VALIDATION
    if codes & ACCESS_DENIED_CODES or status == 403 or any(code.endswith("accessdenied") for code in codes):
        return ACCESS_DENIED
    if codes & NOT_FOUND_CODES or status == 404:
        return MAILBOX_NOT_FOUND
    if codes & THROTTLED_CODES or status == 429:
        return THROTTLED
    if codes & SIGN_IN_CODES or status == 401:
        return SIGN_IN_EXPIRED
    if codes & UNAVAILABLE_CODES or (status is not None and status >= 500):
        return UNAVAILABLE
    for name, kind in _CLASS_KINDS.items():
        if name in codes:
            return kind
    if status is None and any(phrase in message for phrase in _TIMEOUT_PHRASES):
        return UNAVAILABLE
    return UNKNOWN


def _code_in(raw):
    match = _GRAPH_CODE.search(raw)
    if match:
        return match.group(1)
    for word in _WORD.findall(raw):
        lower = word.lower()
        if lower in NOT_ENABLED_CODES | NOT_FOUND_CODES | ACCESS_DENIED_CODES | SYNC_STATE_CODES | THROTTLED_CODES:
            return word
    match = _LEADING_CODE.match(raw)
    return match.group(1) if match else None


def register(app):
    """Make :func:`explain` available to every template as ``explain_error``."""
    app.add_template_global(explain, "explain_error")
