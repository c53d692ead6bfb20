"""Access tokens for Microsoft Graph: requested from the identity platform, kept and renewed.

Two providers serve :class:`app.graph.client.GraphClient` (its ``TokenProvider`` protocol):

* :class:`DelegatedTokenProvider` serves the signed-in user's token, stored encrypted in
  ``oauth_tokens``, and renews it with the refresh token shortly before it expires;
* :class:`ApplicationTokenProvider` serves the app's own client-credentials token. Microsoft
  never issues a refresh token for it, so it lives in this process's memory only and is
  fetched again shortly before it expires.

When Microsoft refuses the grant or the app's credentials, the integration is marked
"needs reconnect" with a reason a person can act on, and :class:`ReconnectRequired` stops
the caller. A token endpoint that is down or slow raises :class:`TokenServiceUnavailable`
and changes nothing. Token values and the client secret never reach a log line, an
exception message or a page.
"""

import hashlib
import logging
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

import requests
from flask import current_app
from oauthlib.oauth2 import BackendApplicationClient, InsecureTransportError, OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app import clock
from app.extensions import db
from app.graph.client import GraphClient, shared_session
from app.models.integration import (
    AUTH_DELEGATED,
    CONNECTION_CONNECTED,
    CONNECTION_NEEDS_RECONNECT,
    Integration,
    OAuthToken,
)

log = logging.getLogger(__name__)

#: Delegated permissions; ``offline_access`` is what makes Microsoft issue a refresh token.
DELEGATED_SCOPES = ("offline_access", "Calendars.ReadWrite", "User.Read")
#: Client credentials can only ask for the app's granted permissions as a whole.
APPLICATION_SCOPE = "https://graph.microsoft.com/.default"

#: Tokens are renewed this long before they expire, so no request leaves with a token
#: that dies on the way.
RENEW_BEFORE_EXPIRY = timedelta(minutes=5)
#: Used only if an answer lacks ``expires_in``; Microsoft's tokens live 60 to 90 minutes.
FALLBACK_LIFETIME = timedelta(minutes=60)
#: Waiting threads re-raise a refusal this recent instead of asking Microsoft again.
REFUSAL_MEMORY = timedelta(minutes=1)
#: (connect, read) seconds for token endpoint calls.
TOKEN_TIMEOUT = (5, 20)
#: Threads that call Graph besides the job threads: the scheduler loop (renewals) and the
#: portal's request threads (connection test, room discovery; gunicorn runs 4 by default).
GRAPH_CALLERS_BESIDE_JOBS = 5
MIN_GRAPH_POOL_SIZE = 10

#: OAuth errors that say "try again later" rather than "a person must act".
TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})

#: AADSTS codes a sync service meets, in words an administrator can act on.
AADSTS_REASONS = {
    50011: "The redirect URI does not match the app registration",
    50020: "This account does not belong to the tenant",
    50076: "Multi-factor authentication is required",
    50079: "Multi-factor authentication must be set up first",
    50173: "The sign-in was revoked, for example after a password reset",
    53003: "Conditional Access blocked the sign-in",
    54005: "The authorization code was already used",
    65001: "The app has no consent for the requested permissions",
    65004: "Consent was declined",
    70008: "The sign-in has expired",
    70011: "The requested permissions are not valid",
    70043: "Conditional Access requires signing in again",
    90002: "The tenant was not found",
    90094: "An administrator must grant consent first",
    500011: "Microsoft Graph is not available in this tenant",
    700016: "The app (client id) is not registered in this tenant",
    700082: "The sign-in expired after a long time without use",
    7000215: "The client secret is wrong",
    7000218: "The request lacked a client secret",
    7000222: "The client secret has expired",
}
#: Fallbacks by OAuth error when the AADSTS code is unknown or missing.
OAUTH_ERROR_REASONS = {
    "access_denied": "Access was denied at sign-in",
    "consent_required": "Consent is required",
    "interaction_required": "Microsoft requires an interactive sign-in",
    "login_required": "Microsoft requires an interactive sign-in",
    "invalid_grant": "The sign-in is no longer valid",
    "invalid_client": "The client id or client secret was not accepted",
    "unauthorized_client": "The app is not allowed to use this sign-in method",
    "invalid_scope": "The requested permissions are not valid",
    "invalid_request": "Microsoft rejected the sign-in request",
}
NO_SECRET_REASON = "No client secret is set: enter it in the settings"
AADSTS_IN_TEXT = re.compile(r"AADSTS(\d+)")


class TokenError(Exception):
    """No access token could be obtained. The message is safe to log and show."""

    is_transient = False


class ReconnectRequired(TokenError):
    """Microsoft refused the grant or the app's credentials: a person has to act.

    :param reason: what went wrong, with the AADSTS code when Microsoft gave one.
    :param aadsts: that code as a number, or ``None``.
    """

    def __init__(self, reason, *, aadsts=None):
        super().__init__(reason)
        self.reason = reason
        self.aadsts = aadsts


class TokenServiceUnavailable(TokenError):
    """The token endpoint failed or did not answer; trying again later may work."""

    is_transient = True


@dataclass(frozen=True)
class ClientSettings:
    """The app registration an integration signs in with, detached from any database session."""

    integration_id: int
    tenant_id: str
    client_id: str
    # Left out of repr so that a logged or printed settings object never shows it.
    client_secret: str = field(repr=False)

    @classmethod
    def of(cls, integration):
        """Read the settings of *integration*; :class:`ReconnectRequired` if the secret is missing."""
        if not integration.client_secret:
            raise ReconnectRequired(NO_SECRET_REASON)
        return cls(integration.id, integration.tenant_id, integration.client_id, integration.client_secret)

    @property
    def cache_key(self):
        """Identifies the app token this registration gets; a new secret gives a new key."""
        secret_digest = hashlib.sha256(self.client_secret.encode()).hexdigest()
        return (self.integration_id, self.tenant_id.lower(), self.client_id.lower(), secret_digest)


# --- The identity platform's endpoints -------------------------------------------------


def authorize_endpoint(tenant_id):
    """The v2.0 authorize URL of *tenant_id*, built from MS_LOGIN_BASE_URL."""
    return _login_url(tenant_id, "authorize")


def token_endpoint(tenant_id):
    """The v2.0 token URL of *tenant_id*, built from MS_LOGIN_BASE_URL."""
    return _login_url(tenant_id, "token")


def _login_url(tenant_id, endpoint):
    base = current_app.config["MS_LOGIN_BASE_URL"].rstrip("/")
    return f"{base}/{quote(tenant_id, safe='')}/oauth2/v2.0/{endpoint}"


def redeem_authorization_code(settings, code, code_verifier, redirect_uri):
    """Exchange an authorization code for tokens (with the PKCE verifier and the client secret).

    :returns: the token answer as a dict.
    :raises TokenError: :class:`ReconnectRequired` or :class:`TokenServiceUnavailable`.
    """
    with _oauth_session(WebApplicationClient(settings.client_id), redirect_uri=redirect_uri) as oauth:
        return _ask_token_endpoint(
            oauth.fetch_token,
            token_endpoint(settings.tenant_id),
            code=code,
            code_verifier=code_verifier,
            include_client_id=True,
            client_secret=settings.client_secret,
            scope=" ".join(DELEGATED_SCOPES),
        )


def redeem_refresh_token(settings, refresh_token):
    """Get a new access token, and a new refresh token that replaces the old one.

    :raises TokenError: :class:`ReconnectRequired` or :class:`TokenServiceUnavailable`.
    """
    with _oauth_session(WebApplicationClient(settings.client_id)) as oauth:
        return _ask_token_endpoint(
            oauth.refresh_token,
            token_endpoint(settings.tenant_id),
            refresh_token=refresh_token,
            # The scope travels in the body because requests-oauthlib would otherwise also
            # compare it with the answer's, and Microsoft answers with resource-qualified
            # names (https://graph.microsoft.com/...) that never match.
            body=urlencode({"scope": " ".join(DELEGATED_SCOPES)}),
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )


def request_application_token(settings):
    """Get an app-only token with the client-credentials grant.

    :raises TokenError: :class:`ReconnectRequired` or :class:`TokenServiceUnavailable`.
    """
    with _oauth_session(BackendApplicationClient(settings.client_id)) as oauth:
        return _ask_token_endpoint(
            oauth.fetch_token,
            token_endpoint(settings.tenant_id),
            include_client_id=True,
            client_secret=settings.client_secret,
            scope=APPLICATION_SCOPE,
        )


def _oauth_session(client, redirect_uri=None):
    # The session is given no scope: see redeem_refresh_token for why.
    oauth = OAuth2Session(client=client, redirect_uri=redirect_uri)
    # Microsoft's error answers are classified before oauthlib parses them, so its
    # generic exceptions never decide whether a person has to act.
    oauth.register_compliance_hook("access_token_response", _raise_for_token_error)
    oauth.register_compliance_hook("refresh_token_response", _raise_for_token_error)
    return oauth


def _ask_token_endpoint(call, url, **kwargs):
    try:
        return dict(call(url, timeout=TOKEN_TIMEOUT, **kwargs))
    except InsecureTransportError:
        raise TokenError("The Microsoft sign-in URL must use https (check MS_LOGIN_BASE_URL)") from None
    except requests.RequestException as exc:
        log.warning("Token endpoint %s unreachable: %s", url, type(exc).__name__)
        raise TokenServiceUnavailable(
            f"Microsoft's sign-in service could not be reached ({type(exc).__name__})"
        ) from None
    except (OAuth2Error, ValueError):
        # A 200 answer without a usable token. `from None`: oauthlib's exception may hold the body.
        log.warning("Token endpoint %s answered without a usable token", url)
        raise TokenServiceUnavailable("Microsoft's sign-in service sent an answer without a token") from None


def _raise_for_token_error(response):
    if response.status_code == 200:
        return response
    raise token_error_from(response)


def token_error_from(response):
    """Turn a failed token endpoint answer into :class:`ReconnectRequired` or :class:`TokenServiceUnavailable`.

    The decision rests on the OAuth ``error`` field, as Microsoft advises, never on the
    description; the AADSTS code only chooses the words.
    """
    body = _json_object(response)
    error = body.get("error") if isinstance(body.get("error"), str) else None
    status = response.status_code
    if status >= 500 or status == 429 or not error or error in TRANSIENT_OAUTH_ERRORS:
        log.warning("Token endpoint answered %s (%s)", status, error or "no OAuth error")
        return TokenServiceUnavailable(f"Microsoft's sign-in service answered {status}")
    code = aadsts_code(body.get("error_codes"), body.get("error_description"))
    log.warning(
        "Token endpoint refused: %s AADSTS%s (trace id %s, correlation id %s)",
        error,
        code,
        body.get("trace_id"),
        body.get("correlation_id"),
    )
    return ReconnectRequired(describe_refusal(error, code), aadsts=code)


def aadsts_code(error_codes, description):
    """The AADSTS number of an error: from ``error_codes``, else from the description text."""
    if isinstance(error_codes, list) and error_codes and isinstance(error_codes[0], int):
        return error_codes[0]
    match = AADSTS_IN_TEXT.search(description or "")
    return int(match.group(1)) if match else None


def describe_refusal(error, code):
    """A readable reason such as ``"Consent was declined (AADSTS65004)"``."""
    text = AADSTS_REASONS.get(code) or OAUTH_ERROR_REASONS.get(error) or f"Microsoft refused the sign-in ({error})"
    return f"{text} (AADSTS{code})" if code else text


def _json_object(response):
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --- Keeping tokens ---------------------------------------------------------------------


def store_delegated_token(row, answer):
    """Copy a token answer into an :class:`OAuthToken` row (encrypted by its column types).

    A refresh token in the answer replaces the stored one: Microsoft rotates it on every use.
    """
    row.access_token = answer["access_token"]
    if answer.get("refresh_token"):
        row.refresh_token = answer["refresh_token"]
    scope = answer.get("scope")
    if isinstance(scope, (list, tuple)):
        scope = " ".join(scope)
    row.scope = scope or row.scope or ""
    row.expires_at = expiry_of(answer)


def expiry_of(answer):
    """When the token in *answer* expires, from its ``expires_in`` seconds."""
    try:
        lifetime = timedelta(seconds=int(answer["expires_in"]))
    except (KeyError, TypeError, ValueError):
        lifetime = FALLBACK_LIFETIME
    return clock.utcnow() + lifetime


def record_reconnect_required(integration, reason):
    """Mark *integration* "needs reconnect" with *reason*; the caller commits."""
    integration.connection_state = CONNECTION_NEEDS_RECONNECT
    integration.connection_error = reason


def _still_fresh(expires_at):
    return expires_at - clock.utcnow() > RENEW_BEFORE_EXPIRY


@contextmanager
def _token_session():
    # Tokens get a session of their own: committing a renewed token or a "needs
    # reconnect" must never commit, or roll back, the half-done work of whoever asked.
    session = Session(db.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()


class _KeyedLocks:
    """One lock per key, created on first use and kept for the life of the process."""

    def __init__(self):
        self._guard = threading.Lock()
        self._locks = {}

    def __call__(self, key):
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


_delegated_renewal_locks = _KeyedLocks()


class DelegatedTokenProvider:
    """Serves the stored delegated token of one integration, renewing it before it expires.

    Renewal is single-flight: within a process a lock per integration lets one thread ask
    Microsoft while the others wait and reuse its result; across processes PostgreSQL's
    ``SELECT ... FOR UPDATE`` on the token row does the same. SQLite has no row locks, so
    there only the in-process lock and a second look at the expiry apply; two processes may
    then both renew, which is harmless because the older refresh token stays valid.
    """

    def __init__(self, integration_id):
        self.integration_id = integration_id
        self._handed_out = None

    def get_token(self):
        """The stored access token, renewed first if it expires within five minutes."""
        with _token_session() as session:
            row = self._stored_token(session)
            if _still_fresh(row.expires_at):
                return self._hand_out(row.access_token)
            stale = row.access_token
        return self._renew(stale)

    def refresh_token(self):
        """Renew now, because Graph rejected the token last handed out (a 401)."""
        return self._renew(self._handed_out, forced=True)

    def _renew(self, stale, forced=False):
        with _delegated_renewal_locks(self.integration_id):
            with _token_session() as session:
                row = self._stored_token(session, for_update=True)
                renewed_meanwhile = stale is not None and row.access_token != stale
                if _still_fresh(row.expires_at) and (renewed_meanwhile or not forced):
                    return self._hand_out(row.access_token)
                integration = session.get(Integration, self.integration_id)
                try:
                    answer = self._ask_for_renewal(integration, row)
                except ReconnectRequired as refusal:
                    record_reconnect_required(integration, refusal.reason)
                    session.commit()
                    log.warning("Integration %s needs reconnecting: %s", self.integration_id, refusal.reason)
                    raise
                store_delegated_token(row, answer)
                try:
                    session.commit()
                except StaleDataError:
                    # The row was deleted while Microsoft answered: the integration was disconnected.
                    raise ReconnectRequired("The integration was disconnected from Microsoft") from None
                log.info("Renewed the delegated token of integration %s", self.integration_id)
                return self._hand_out(row.access_token)

    def _ask_for_renewal(self, integration, row):
        settings = ClientSettings.of(integration)
        if not row.refresh_token:
            raise ReconnectRequired("Microsoft issued no refresh token (offline_access missing)")
        return redeem_refresh_token(settings, row.refresh_token)

    def _stored_token(self, session, for_update=False):
        query = db.select(OAuthToken).where(OAuthToken.integration_id == self.integration_id)
        if for_update:
            # Another process renewing the same token makes this wait until its commit;
            # SQLite ignores the clause.
            query = query.with_for_update()
        row = session.scalar(query)
        integration = session.get(Integration, self.integration_id)
        if integration is None:
            raise ReconnectRequired("The integration no longer exists")
        if row is None or integration.connection_state != CONNECTION_CONNECTED:
            raise ReconnectRequired(integration.connection_error or "The integration is not connected to Microsoft")
        return row

    def _hand_out(self, access_token):
        self._handed_out = access_token
        return access_token


@dataclass(frozen=True)
class _CachedToken:
    access_token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class _Refusal:
    error: ReconnectRequired
    at: datetime


class ApplicationTokenCache:
    """App-only tokens of this process, shared by its threads, keyed by :attr:`ClientSettings.cache_key`."""

    def __init__(self):
        self._guard = threading.Lock()
        self._tokens = {}
        self._refusals = {}
        self.lock_for = _KeyedLocks()

    def fresh(self, key):
        """The cached token for *key* unless it expires within five minutes."""
        token = self._tokens.get(key)
        return token if token is not None and _still_fresh(token.expires_at) else None

    def recent_refusal(self, key):
        """The refusal Microsoft gave for *key* within the last minute, if any."""
        refusal = self._refusals.get(key)
        if refusal is not None and clock.utcnow() - refusal.at < REFUSAL_MEMORY:
            return refusal.error
        return None

    def put(self, key, token):
        with self._guard:
            self._tokens[key] = token
            self._refusals.pop(key, None)

    def refuse(self, key, error):
        with self._guard:
            self._tokens.pop(key, None)
            self._refusals[key] = _Refusal(error, clock.utcnow())

    def drop(self, key):
        with self._guard:
            self._tokens.pop(key, None)
            self._refusals.pop(key, None)

    def forget_integration(self, integration_id):
        """Drop every token of *integration_id*, whatever secret it was fetched with."""
        with self._guard:
            for store in (self._tokens, self._refusals):
                for key in [k for k in store if k[0] == integration_id]:
                    del store[key]


application_tokens = ApplicationTokenCache()


def forget_application_token(integration_id):
    """Drop this process's app-only token of *integration_id* (on disconnect)."""
    application_tokens.forget_integration(integration_id)


class ApplicationTokenProvider:
    """Serves the app-only (client-credentials) token of one integration from the process cache.

    On a cold cache one caller asks Microsoft while the others wait for its answer; the
    token is fetched again five minutes before it expires. The settings are read once, when
    first needed, so a long sync keeps one consistent key; *settings* already read by the
    caller spare that read.
    """

    def __init__(self, integration_id, settings=None):
        self.integration_id = integration_id
        self._settings = settings
        self._handed_out = None

    @classmethod
    def of(cls, integration):
        """A provider for *integration* as the caller loaded it.

        Every job thread builds one of these per job: reading the settings again would
        cost each job a second database connection while its own is held, and a pool
        sized for one connection per thread would run dry under a fleet of rooms.
        """
        settings = ClientSettings.of(integration) if integration.client_secret else None
        return cls(integration.id, settings)

    def get_token(self):
        """The cached app-only token, fetched first if missing or about to expire."""
        key = self._client_settings().cache_key
        cached = application_tokens.fresh(key)
        if cached is None:
            with application_tokens.lock_for(key):
                # Whoever held the lock may have fetched the token in the meantime.
                cached = application_tokens.fresh(key)
                if cached is None:
                    refusal = application_tokens.recent_refusal(key)
                    if refusal is not None:
                        raise ReconnectRequired(refusal.reason, aadsts=refusal.aadsts)
                    cached = self._fetch()
        return self._hand_out(cached.access_token)

    def refresh_token(self):
        """Fetch a new token because Graph rejected the last one, unless another caller just did."""
        key = self._client_settings().cache_key
        with application_tokens.lock_for(key):
            cached = application_tokens.fresh(key)
            replaced_meanwhile = cached is not None and self._handed_out is not None
            if replaced_meanwhile and cached.access_token != self._handed_out:
                return self._hand_out(cached.access_token)
            application_tokens.drop(key)
            return self._hand_out(self._fetch().access_token)

    def _fetch(self):
        settings = self._client_settings()
        try:
            answer = request_application_token(settings)
        except ReconnectRequired as refusal:
            application_tokens.refuse(settings.cache_key, refusal)
            self._record_refusal(refusal)
            raise
        token = _CachedToken(answer["access_token"], expiry_of(answer))
        application_tokens.put(settings.cache_key, token)
        log.info("Fetched an app-only token for integration %s", self.integration_id)
        return token

    def _client_settings(self):
        if self._settings is None:
            with _token_session() as session:
                integration = session.get(Integration, self.integration_id)
                if integration is None:
                    raise ReconnectRequired("The integration no longer exists")
                try:
                    self._settings = ClientSettings.of(integration)
                except ReconnectRequired as refusal:
                    self._record_refusal(refusal)
                    raise
        return self._settings

    def _record_refusal(self, refusal):
        with _token_session() as session:
            integration = session.get(Integration, self.integration_id)
            if integration is not None:
                record_reconnect_required(integration, refusal.reason)
                session.commit()
        log.warning("Integration %s needs reconnecting: %s", self.integration_id, refusal.reason)

    def _hand_out(self, access_token):
        self._handed_out = access_token
        return access_token


class IssuedTokenProvider:
    """Serves one token that was just issued and is not stored yet (the sign-in's own Graph call)."""

    def __init__(self, access_token):
        self._access_token = access_token

    def get_token(self):
        return self._access_token

    def refresh_token(self):
        # Nothing to renew it with: the client's retry gets a second 401 and gives up.
        return self._access_token


def token_provider_for(integration):
    """The token provider that fits *integration*'s connection method."""
    if integration.auth_mode == AUTH_DELEGATED:
        return DelegatedTokenProvider(integration.id)
    return ApplicationTokenProvider.of(integration)


def graph_client_for(integration, *, token_provider=None, **client_options):
    """A :class:`GraphClient` for *integration* on GRAPH_BASE_URL, sharing the process's connection pool.

    :param token_provider: overrides the provider chosen by :func:`token_provider_for`.
    :param client_options: passed on to :class:`GraphClient` (timeouts, retries, sleep).
    """
    provider = token_provider or token_provider_for(integration)
    session = shared_session(pool_maxsize=graph_pool_size(current_app.config))
    return GraphClient(current_app.config["GRAPH_BASE_URL"], provider, session=session, **client_options)


def graph_pool_size(config):
    """Connections to keep per Graph host: one per job thread, plus the callers beside them."""
    return max(MIN_GRAPH_POOL_SIZE, int(config.get("JOB_WORKERS", 4)) + GRAPH_CALLERS_BESIDE_JOBS)


class DisconnectTokenProvider:
    """Tokens for the deletions of a disconnect, which the usual providers refuse once the integration is disconnected.

    Delegated: the stored access token, or one renewed with the stored refresh token (the
    rotated refresh token is committed at once, for a retry). Application: a fresh app-only
    token from the client credentials in the settings. Nothing goes into the process's
    token cache, and a refusal does not mark the integration, which is disconnected already.
    *auth_mode* is the method the subscriptions were made with, when the integration has
    switched method since; by default its current one.
    """

    def __init__(self, integration, auth_mode=None, *, tokens=None):
        # *tokens*: a row of delegated tokens used instead of the integration's own (the
        # retiring account of an account switch).
        self.integration = integration
        self.tokens = tokens
        self.delegated = integration.is_delegated if auth_mode is None else auth_mode == AUTH_DELEGATED
        self._access_token = None

    def get_token(self):
        if self._access_token is None:
            self._access_token = self._fetch(stored_ok=True)
        return self._access_token

    def refresh_token(self):
        self._access_token = self._fetch(stored_ok=False)
        return self._access_token

    def _fetch(self, stored_ok):
        integration = self.integration
        if not self.delegated:
            return request_application_token(ClientSettings.of(integration))["access_token"]
        row = self.tokens if self.tokens is not None else integration.token
        if row is None:
            raise ReconnectRequired("No stored token is left to authorise the deletion")
        if stored_ok and row.expires_at - clock.utcnow() > RENEW_BEFORE_EXPIRY:
            return row.access_token
        if not row.refresh_token:
            raise ReconnectRequired("No refresh token is stored")
        store_delegated_token(row, redeem_refresh_token(ClientSettings.of(integration), row.refresh_token))
        db.session.commit()
        return row.access_token
