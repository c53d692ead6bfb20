"""A small Microsoft Graph v1.0 client built on ``requests``.

It adds what every calendar call needs: bearer tokens with one refresh on
401, Graph's throttling rules (``Retry-After``, backoff, a fresh connection
after 503), typed errors, paging and JSON batching. It has no Flask
dependency; the application builds it from its configuration.
"""

import functools
import itertools
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.http import parse_list_header

from app.metrics import instruments

from .errors import (
    THROTTLE_STATUSES,
    UNANSWERED_STATUS,
    GraphError,
    GraphTransportError,
    error_from_parts,
    error_from_response,
    parse_retry_after,
    strip_query,
)

log = logging.getLogger(__name__)

#: Keeps event and calendar ids stable when items move between folders.
IMMUTABLE_ID_PREFERENCE = 'IdType="ImmutableId"'

#: Graph's limit on the number of requests in one ``$batch`` call.
BATCH_LIMIT = 20

_shared_session = None
_shared_pool_maxsize = 0
_shared_lock = threading.Lock()


class TokenProvider(Protocol):
    """Supplies access tokens for Graph.

    ``get_token`` returns a valid access token and is called before every
    request, so it should serve a cached token until it nears expiry.
    ``refresh_token`` is called after Graph rejects a token with 401: it must
    obtain a new token, cache it (so ``get_token`` returns it from then on)
    and return it.
    """

    def get_token(self) -> str: ...

    def refresh_token(self) -> str: ...


def build_session(pool_maxsize=10):
    """Return a new :class:`requests.Session` keeping up to *pool_maxsize*
    connections per host alive for reuse."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def shared_session(pool_maxsize=10):
    """Return one process-wide session for clients that should share a pool.

    The session is built on the first call. Size it for the number of threads
    calling Graph at once: a thread finding every pooled connection taken opens
    one more and throws it away afterwards. A later call asking for a larger
    pool gets a new, larger session; clients holding the old one keep it.
    """
    global _shared_session, _shared_pool_maxsize
    with _shared_lock:
        if _shared_session is None or pool_maxsize > _shared_pool_maxsize:
            # A new session rather than a new adapter: mounting one would change
            # the session under the threads sending through it.
            _shared_session = build_session(pool_maxsize)
            _shared_pool_maxsize = pool_maxsize
        return _shared_session


@dataclass(frozen=True)
class BatchRequest:
    """One request inside a ``$batch`` call.

    *url* is relative to the version root, as Graph expects, e.g.
    ``/users/room1@contoso.com/events``. A leading slash is added if missing.
    """

    id: str
    method: str
    url: str
    body: Any = None
    headers: dict | None = None


@dataclass
class BatchResult:
    """The answer to one :class:`BatchRequest`.

    *error* is the typed :class:`GraphError` when the item failed, else
    ``None``. *status* is ``None`` when the item never got an answer.
    """

    id: str
    status: int | None
    headers: dict
    body: Any
    error: GraphError | None = None

    @property
    def ok(self):
        return self.error is None


class GraphClient:
    """Calls Microsoft Graph with retries, typed errors, paging and batching.

    :param base_url: version root, e.g. ``https://graph.microsoft.com/v1.0``.
    :param token_provider: a :class:`TokenProvider`.
    :param session: a :class:`requests.Session` to use, e.g.
        :func:`shared_session`; by default the client builds its own.
    :param timeout: ``(connect, read)`` seconds, applied to every call.
    :param max_attempts: most sends of one request while Graph throttles or
        the network fails, the first one included.
    :param max_total_wait: most seconds spent waiting between those sends.
    :param backoff_base: first backoff step when Graph gives no Retry-After.
    :param backoff_cap: largest backoff step.
    :param sleep: how to wait; tests pass a recorder.
    :param default_headers: headers for every request. Their ``Prefer``
        values are combined with ``IdType="ImmutableId"``, which is only
        replaced by another ``IdType`` preference.
    :param rng: source of jitter with a ``uniform(a, b)`` method.
    """

    def __init__(
        self,
        base_url,
        token_provider,
        *,
        session=None,
        timeout=(5, 30),
        max_attempts=5,
        max_total_wait=120.0,
        backoff_base=1.0,
        backoff_cap=30.0,
        sleep=time.sleep,
        default_headers=None,
        rng=None,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self._tokens = token_provider
        self._owns_session = session is None
        self._session = session if session is not None else build_session()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_total_wait = max_total_wait
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._default_headers = _merge_headers(
            {"Accept": "application/json", "Prefer": IMMUTABLE_ID_PREFERENCE},
            default_headers,
        )

    def close(self):
        """Release pooled connections if the client built its own session."""
        if self._owns_session:
            self._session.close()

    def url_for(self, path_or_url):
        """Return the absolute URL for a path relative to :attr:`base_url`.

        Absolute URLs, such as Graph's ``@odata.nextLink``, are returned
        unchanged because their tokens must be replayed byte for byte. They
        must point at the same host as :attr:`base_url`, so the bearer token
        is never sent anywhere else.
        """
        if _is_absolute(path_or_url):
            if _origin(path_or_url) != self._origin:
                raise ValueError(f"refusing to call Graph at {strip_query(path_or_url)}")
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(self, method, path_or_url, *, params=None, json=None, headers=None, retry_unanswered=True):
        """Send one request and return the successful :class:`requests.Response`.

        Throttling answers (429, 503, 504) and network failures are retried
        within ``max_attempts`` and ``max_total_wait``; a 401 refreshes the
        token and is retried once. Any other failure raises the matching
        :class:`~app.graph.errors.GraphError` at once. With ``retry_unanswered``
        off, a request Graph may have carried out without its answer arriving
        (a network failure, a 504) is not sent again: for a create that has no
        ``transactionId``, a second send could create a second one.
        """
        url = self.url_for(path_or_url)
        headers = _merge_headers(self._default_headers, headers)
        send = functools.partial(self._send, method, url, params, json, headers)
        response = self._send_with_retries(send, method, url, retry_unanswered)
        if response.status_code == 401:
            # A long delta round can outlive its token; one refresh recovers
            # that, while a second 401 means the grant itself is broken.
            log.info("Graph %s %s answered 401; refreshing the token", method, _path(url))
            self._tokens.refresh_token()
            response = self._send_with_retries(send, method, url, retry_unanswered)
        if response.status_code >= 400:
            raise error_from_response(response, method, url)
        return response

    def get(self, path, params=None, headers=None):
        """GET *path* and return the decoded JSON body (``{}`` if empty)."""
        response = self.request("GET", path, params=params, headers=headers)
        return _json_or_none(response) or {}

    def post(self, path, json=None, headers=None, retry_unanswered=True):
        """POST *json* to *path*; return the JSON answer or ``None`` if empty."""
        return _json_or_none(self.request("POST", path, json=json, headers=headers, retry_unanswered=retry_unanswered))

    def patch(self, path, json=None, headers=None):
        """PATCH *path* with *json*; return the JSON answer or ``None`` if empty."""
        return _json_or_none(self.request("PATCH", path, json=json, headers=headers))

    def delete(self, path, headers=None):
        """DELETE *path*; Graph answers 204 on success."""
        self.request("DELETE", path, headers=headers)

    def iter_pages(self, path_or_url, params=None, headers=None):
        """Yield each page of a collection, fetching the next one lazily.

        ``@odata.nextLink`` is followed exactly as returned, and only the
        newest one: older links may already be stale. *params* belong to the
        first request only, since Graph encodes them into its links. The last
        page is yielded too, so the caller can read its ``@odata.deltaLink``.
        """
        link = path_or_url
        while link:
            page = self.get(link, params=params, headers=headers)
            yield page
            link, params = page.get("@odata.nextLink"), None

    def iter_items(self, path_or_url, params=None, headers=None):
        """Yield every item of ``value`` across all pages."""
        for page in self.iter_pages(path_or_url, params=params, headers=headers):
            yield from page.get("value", [])

    def batch(self, requests_list):
        """Run *requests_list* through ``$batch`` and return one
        :class:`BatchResult` per request, in the order given.

        Requests are sent 20 at a time. Items Graph throttled (429, 503, 504)
        are sent again in a later batch after the longest ``Retry-After``
        among them, within the same attempt and wait limits as
        :meth:`request`; items still throttled after that keep their error.
        If a whole ``$batch`` call fails, each of its items carries that error
        with a ``None`` status.

        :raises ValueError: for duplicate ids or absolute urls, before any
            request is sent.
        """
        items = list(requests_list)
        _validate_batch(items)
        results = {}
        pending, waited = items, 0.0
        for attempt in itertools.count(1):
            throttled = self._batch_round(pending, results)
            delay = None
            if throttled:
                retry_after = _longest_retry_after(results[item.id] for item in throttled)
                delay = self._next_wait(attempt, waited, retry_after)
            if delay is None:
                return [results[item.id] for item in items]
            log.warning(
                "Graph $batch: %d of %d item(s) throttled; retrying them in %.2fs",
                len(throttled),
                len(pending),
                delay,
            )
            self._sleep(delay)
            waited += delay
            pending = throttled

    def _batch_round(self, pending, results):
        """Send *pending* in chunks, record results; return throttled items."""
        throttled = []
        for start in range(0, len(pending), BATCH_LIMIT):
            for item, result in self._send_batch(pending[start : start + BATCH_LIMIT]):
                results[item.id] = result
                if result.status in THROTTLE_STATUSES:
                    throttled.append(item)
        return throttled

    def _send_with_retries(self, send, method, url, retry_unanswered=True):
        """Call *send* with a current token until Graph stops throttling.

        Returns the last response, which may still be a throttling answer
        once the attempt or waiting budget is spent.
        """
        waited = 0.0
        for attempt in itertools.count(1):
            try:
                response = send(self._tokens.get_token())
            except (requests.ConnectionError, requests.Timeout) as exc:
                delay = self._next_wait(attempt, waited, None) if retry_unanswered else None
                if delay is None:
                    raise GraphTransportError(
                        f"{type(exc).__name__} after {attempt} attempt(s)",
                        method=method,
                        url=url,
                    ) from exc
                reason = type(exc).__name__
            else:
                status = response.status_code
                if status not in THROTTLE_STATUSES or (status == UNANSWERED_STATUS and not retry_unanswered):
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                delay = self._next_wait(attempt, waited, retry_after)
                if delay is None:
                    return response
                reason = str(status)
                if status == 503:
                    self._drop_connections(url)
            instruments.graph_retry(reason)
            log.warning(
                "Graph %s %s: %s; retrying in %.2fs (attempt %d of %d)",
                method,
                _path(url),
                reason,
                delay,
                attempt,
                self.max_attempts,
            )
            self._sleep(delay)
            waited += delay

    def _send(self, method, url, params, json, headers, token):
        headers = dict(headers)
        headers["Authorization"] = f"Bearer {token}"
        # Our own id per send lets a failure be matched with Graph's logs.
        headers["client-request-id"] = str(uuid.uuid4())
        response = self._session.request(method, url, params=params, json=json, headers=headers, timeout=self.timeout)
        instruments.graph_response(response.status_code)
        log.debug(
            "Graph %s %s -> %d (client-request-id %s, request-id %s)",
            method,
            _path(url),
            response.status_code,
            headers["client-request-id"],
            response.headers.get("request-id"),
        )
        return response

    def _next_wait(self, attempt, waited, retry_after):
        """Seconds to wait before the next send, or ``None`` to give up."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is None:
            # Full jitter spreads the retries of concurrent workers apart.
            step = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
            retry_after = self._rng.uniform(0, step)
        if waited + retry_after > self.max_total_wait:
            return None
        return retry_after

    def _drop_connections(self, url):
        # Graph asks for retries after a 503 to use a new connection, so the
        # next send does not land on the same busy front end. Closing the
        # adapter empties its pool; in-flight requests of other threads
        # finish normally and their connections are discarded afterwards.
        self._session.get_adapter(url).close()

    def _send_batch(self, chunk):
        """POST one ``$batch`` of at most 20 items; yield (item, result)."""
        payload = {"requests": [self._batch_entry(item) for item in chunk]}
        try:
            answer = self.post("$batch", json=payload) or {}
        except GraphError as exc:
            # The outer call already used its own retries, so these items
            # are final rather than queued for another round.
            for item in chunk:
                yield item, BatchResult(item.id, None, {}, None, exc)
            return
        by_id = {}
        for entry in answer.get("responses") or []:
            if isinstance(entry, dict):
                by_id[str(entry.get("id", "")).casefold()] = entry
        for item in chunk:
            yield item, self._batch_result(item, by_id.get(str(item.id).casefold()))

    def _batch_entry(self, item):
        entry = {"id": str(item.id), "method": item.method.upper(), "url": _batch_url(item.url)}
        # Items do not inherit the outer request's headers, so the immutable
        # id preference is repeated on each of them.
        headers = _merge_headers({"Prefer": self._default_headers["Prefer"]}, item.headers)
        if item.body is not None:
            entry["body"] = item.body
            headers.setdefault("Content-Type", "application/json")
        entry["headers"] = dict(headers)
        return entry

    def _batch_result(self, item, entry):
        url = self.url_for(_batch_url(item.url))
        if entry is None:
            error = GraphError("No answer for this item in the batch", method=item.method, url=url)
            return BatchResult(item.id, None, {}, None, error)
        status = entry.get("status")
        headers = entry.get("headers") or {}
        body = entry.get("body")
        error = None
        if not isinstance(status, int) or not 200 <= status < 300:
            error = error_from_parts(status, headers, body, item.method, url)
        return BatchResult(item.id, status, headers, body, error)


def _longest_retry_after(results):
    known = [r.error.retry_after for r in results if r.error.retry_after is not None]
    return max(known) if known else None


def _batch_url(url):
    return url if url.startswith("/") else f"/{url}"


def _validate_batch(items):
    # Checked up front: a bad item found mid-way would leave earlier
    # chunks already applied.
    seen = set()
    for item in items:
        if _is_absolute(item.url):
            raise ValueError(f"batch urls must be relative to the version root: {strip_query(item.url)}")
        # Graph compares batch ids case-insensitively.
        key = str(item.id).casefold()
        if key in seen:
            raise ValueError(f"duplicate batch request id: {item.id!r}")
        seen.add(key)


def _merge_headers(base, extra):
    """Return *base* updated with *extra*, combining their ``Prefer`` values."""
    merged = CaseInsensitiveDict(base)
    for name, value in (extra or {}).items():
        if name.lower() == "prefer" and "Prefer" in merged:
            value = merge_preferences(merged["Prefer"], value)
        merged[name] = value
    return merged


def merge_preferences(*values):
    """Combine ``Prefer`` header values into one, later ones winning.

    Preferences are keyed by name, so ``IdType="RestId"`` replaces
    ``IdType="ImmutableId"`` while ``odata.maxpagesize=50`` is added next to
    it. The result is comma separated, as RFC 7240 allows.
    """
    combined = {}
    for value in values:
        # Commas inside quoted values, e.g. a time zone name, do not split (RFC 9110 lists).
        for preference in parse_list_header(value or ""):
            name = preference.split("=", 1)[0].strip().lower()
            combined.pop(name, None)
            combined[name] = preference
    return ", ".join(combined.values())


def _is_absolute(url):
    return url.lower().startswith(("https://", "http://"))


def _path(url):
    # Logs name the resource only: query strings carry paging tokens.
    return urlsplit(url).path


def _origin(url):
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _json_or_none(response):
    if not response.content:
        return None
    return response.json()
