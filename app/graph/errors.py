"""Typed errors for Microsoft Graph answers.

Graph reports failures as an HTTP status plus a JSON body of the form
``{"error": {"code": ..., "message": ..., "innerError": {"request-id": ...}}}``.
The classes below let callers react to what happened (retry later, resync
a delta round, report a missing permission) without parsing bodies themselves.
"""

import math
from http import HTTPStatus
from urllib.parse import urlsplit, urlunsplit

from requests.structures import CaseInsensitiveDict

#: Codes meaning the delta state behind a token is gone. The docs spell the
#: first one ``syncStateNotFound`` but real answers use ``SyncStateNotFound``,
#: so they are compared in lower case.
SYNC_STATE_CODES = frozenset({"syncstatenotfound", "resyncrequired"})

#: Statuses Graph uses to say "busy, come back later".
THROTTLE_STATUSES = frozenset({429, 503, 504})
# A gateway that gave up waiting: the request may have been carried out all the same.
UNANSWERED_STATUS = 504

_NOT_FOUND_CODES = frozenset({"erroritemnotfound", "itemnotfound"})
_ACCESS_DENIED_CODES = frozenset({"erroraccessdenied", "accessdenied"})
_MESSAGE_LIMIT = 300


class GraphError(Exception):
    """A failed Graph call.

    :param message: Graph's error message, or a short description.
    :param status: HTTP status, or ``None`` when no answer was received.
    :param code: Graph's ``error.code``, or ``None`` if the body had none.
    :param request_id: Graph's ``request-id``, which support asks for.
    :param method: HTTP method of the failed call.
    :param url: URL of the failed call; its query string is dropped.
    :param retry_after: seconds Graph asked to wait, for throttling answers.
    """

    #: Whether retrying the same call later may succeed.
    is_transient = False

    def __init__(
        self,
        message="",
        *,
        status=None,
        code=None,
        request_id=None,
        method=None,
        url=None,
        retry_after=None,
    ):
        self.message = _one_line(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.method = method
        self.url = strip_query(url)
        self.retry_after = retry_after
        # Keeps the errors picklable for job queues: the message is the only
        # positional argument, the rest is restored from ``__dict__``.
        super().__init__(self.message)

    def __str__(self):
        head = f"Graph {self.status}" if self.status is not None else "Graph"
        if self.code:
            head = f"{head} {self.code}"
        context = []
        if self.method and self.url:
            context.append(f"{self.method} {self.url}")
        if self.request_id:
            context.append(f"request-id {self.request_id}")
        text = f"{head}: {self.message}"
        return f"{text} ({'; '.join(context)})" if context else text


class GraphAuthError(GraphError):
    """The access token was rejected even after a refresh (401)."""


class GraphForbidden(GraphError):
    """Access denied (403), e.g. a mailbox outside the app's access policy."""


class GraphNotFound(GraphError):
    """The item does not exist (404 or ``ErrorItemNotFound``)."""


class GraphThrottled(GraphError):
    """Graph kept answering 429, 503 or 504 until the retry budget ran out."""

    is_transient = True


class GraphServerError(GraphError):
    """Graph failed with a 5xx status other than the throttling ones."""

    is_transient = True


class GraphSyncStateExpired(GraphError):
    """The delta token is no longer valid: start a full sync round."""


class GraphBadRequest(GraphError):
    """Graph refused the request (any other 4xx)."""


class GraphTransportError(GraphError):
    """No answer: connection failures or timeouts outlasted the retries."""

    is_transient = True


def strip_query(url):
    """Return *url* without its query string and fragment."""
    if not url:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def parse_retry_after(value):
    """Return the ``Retry-After`` header as seconds, or ``None``.

    Graph sends a number of seconds, sometimes with a fraction. The HTTP-date
    form and malformed values give ``None`` so the caller falls back to its
    own backoff instead of trusting a clock comparison.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def error_from_response(response, method, url):
    """Build the typed :class:`GraphError` for a non-success *response*.

    The body is parsed defensively: proxies and gateways may answer with
    HTML or nothing at all.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    fallback = response.text if body is None else ""
    return error_from_parts(response.status_code, response.headers, body, method, url, fallback)


def error_from_parts(status, headers, body, method, url, fallback=""):
    """Build the typed :class:`GraphError` from a status, headers and body.

    This serves both plain responses and the items of a ``$batch`` answer,
    whose headers and body arrive as plain JSON values.
    """
    headers = CaseInsensitiveDict(headers or {})
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    inner = error.get("innerError") or error.get("innererror")
    inner = inner if isinstance(inner, dict) else {}

    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    message = message or _one_line(fallback) or _reason(status)
    request_id = inner.get("request-id") or headers.get("request-id") or headers.get("client-request-id")
    cls = _error_class(status, code, inner.get("code"))
    return cls(
        message,
        status=status,
        code=code,
        request_id=request_id,
        method=method,
        url=url,
        retry_after=parse_retry_after(headers.get("Retry-After")),
    )


def _error_class(status, code, inner_code):
    codes = {c.lower() for c in (code, inner_code) if isinstance(c, str)}
    client_error = status is not None and 400 <= status < 500
    if status == 410 or (client_error and codes & SYNC_STATE_CODES):
        return GraphSyncStateExpired
    if status == 401:
        return GraphAuthError
    if status in THROTTLE_STATUSES:
        return GraphThrottled
    if status == 403 or (client_error and codes & _ACCESS_DENIED_CODES):
        return GraphForbidden
    if status == 404 or (client_error and codes & _NOT_FOUND_CODES):
        return GraphNotFound
    if client_error:
        return GraphBadRequest
    if status is not None and status >= 500:
        return GraphServerError
    return GraphError


def _reason(status):
    try:
        return HTTPStatus(status).phrase
    except (TypeError, ValueError):
        return "Unexpected answer"


def _one_line(text):
    text = " ".join(str(text or "").split())
    if len(text) > _MESSAGE_LIMIT:
        return text[: _MESSAGE_LIMIT - 1] + "…"
    return text
