""" "Connect with Microsoft" for delegated integrations, and disconnecting.

1. :func:`begin_sign_in` builds the authorize URL (PKCE with S256, a random state) and keeps
   the state, the code verifier, the user and the integration in Flask's session. That
   session is a cookie signed with SECRET_KEY, not a server-side store: the browser carries
   the pending sign-in and cannot alter it, though it can read it. The client secret never
   goes there.
2. Microsoft sends the browser back to ``/oauth/callback``. :func:`finish_sign_in` trusts only
   the pending sign-in found under the returned state, never an id in the query string. It
   redeems the code (the one call to Microsoft in the request, bounded by the token
   endpoint timeout and never retried), reads the account from the claims of the ID token
   that answer carries, and stores tokens, account and calendar link in one commit, so a
   failure halfway stores nothing. Graph itself is not called.

Disconnecting never calls Microsoft either: the deletion of the calendars' subscriptions
is queued (`app.subscriptions.jobs.unsubscribe_all`), and the tokens that authorise it are
deleted by that job once it has run.

A sign-in that fails, is cancelled at Microsoft, or answers with a state this browser did
not start changes nothing but the audit log: a working connection keeps working, and
"needs reconnect" keeps meaning that Microsoft refused the stored tokens.
"""

import base64
import binascii
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import session
from oauthlib.oauth2 import WebApplicationClient
from requests_oauthlib import OAuth2Session
from sqlalchemy.exc import IntegrityError

from app import clock
from app.auth import audit_log
from app.extensions import db
from app.graph.tokens import (
    DELEGATED_SCOPES,
    ClientSettings,
    ReconnectRequired,
    TokenError,
    aadsts_code,
    authorize_endpoint,
    describe_refusal,
    forget_application_token,
    redeem_authorization_code,
    store_delegated_token,
)
from app.models import AccountHandover
from app.models.calendar_link import MAILBOX_ME, CalendarLink
from app.models.integration import CONNECTION_CONNECTED, CONNECTION_NOT_CONNECTED, Integration, OAuthToken
from app.oauth import account_switch
from app.outbound.push import resume_parked
from app.public_urls import oauth_redirect_uri
from app.subscriptions.jobs import activate_link, disconnect_deletions, unsubscribe_all

log = logging.getLogger(__name__)

PENDING_KEY = "oauth_pending_sign_ins"
#: Authorization codes live about ten minutes; a sign-in left open longer is stale.
PENDING_LIFETIME = timedelta(minutes=15)
#: Enough for a few tabs; the oldest pending sign-in makes room for a new one.
MAX_PENDING = 5
CODE_VERIFIER_LENGTH = 64
#: ``openid profile`` make Microsoft's token answer carry an ID token naming the account,
#: so the sign-in need not ask Graph who signed in.
SIGN_IN_SCOPES = ("openid", "profile", *DELEGATED_SCOPES)

STATE_MISMATCH_REASON = "The answer from Microsoft did not match the sign-in started here (state mismatch)"
AGAIN = "Connect with Microsoft again."


class CannotConnect(Exception):
    """The integration is not ready for a sign-in; the message says what to fix."""


@dataclass(frozen=True)
class SignInOutcome:
    """How a sign-in ended: *integration* connected, or, with *switch_offer*, waiting for the admin's choice."""

    integration: Integration
    switch_offer: AccountHandover | None = None


class SignInFailed(Exception):
    """The callback could not connect the integration.

    :param message: shown to the user; names no secret.
    :param integration: the integration concerned, when it is known and may be shown.
    """

    def __init__(self, message, integration=None):
        super().__init__(message)
        self.message = message
        self.integration = integration


def connect_blocker(integration):
    """Why *integration* cannot start a sign-in yet, or ``None`` when it can."""
    if not integration.is_delegated:
        return "This integration uses application permissions, which need no sign-in: use Test connection."
    if not integration.tenant_id or not integration.client_id:
        return "Enter the tenant id and client id in the settings before connecting."
    if not integration.has_client_secret:
        return "Enter the client secret in the settings before connecting."
    if integration.object_id is None:
        return "Choose the object this calendar books in the settings before connecting."
    return None


def begin_sign_in(integration, user):
    """Return the Microsoft authorize URL for *integration* and remember the pending sign-in.

    :raises CannotConnect: when :func:`connect_blocker` names a problem.
    """
    problem = connect_blocker(integration)
    if problem:
        raise CannotConnect(problem)
    client = WebApplicationClient(integration.client_id)
    code_verifier = client.create_code_verifier(CODE_VERIFIER_LENGTH)
    state = secrets.token_urlsafe(32)
    with OAuth2Session(client=client, scope=list(SIGN_IN_SCOPES), redirect_uri=oauth_redirect_uri()) as oauth:
        url, _ = oauth.authorization_url(
            authorize_endpoint(integration.tenant_id),
            state=state,
            code_challenge=client.create_code_challenge(code_verifier, "S256"),
            code_challenge_method="S256",
            response_mode="query",
            # Lets the admin pick the mailbox to connect instead of silently reusing
            # whichever Microsoft account the browser is signed in with.
            prompt="select_account",
        )
    _remember_pending(
        state,
        {
            "integration_id": integration.id,
            "user_id": user.id,
            "code_verifier": code_verifier,
            "started_at": clock.utcnow().timestamp(),
        },
    )
    return url


def finish_sign_in(args, user):
    """Complete the sign-in Microsoft answered with *args* (the callback's query string).

    :returns: a :class:`SignInOutcome`: the integration connected, or a switch to another
        account offered (nothing changed yet, see `app.oauth.account_switch`).
    :raises SignInFailed: with a message for the user; the failure is in the audit log of
        the integration, when it is known, and nothing else changed.
    """
    pending = _take_pending(args.get("state"))
    if pending is None or pending["user_id"] != user.id:
        raise _reject_unmatched_answer(user)
    integration = _pending_integration(pending, user)
    if clock.utcnow().timestamp() - pending["started_at"] > PENDING_LIFETIME.total_seconds():
        _fail(integration, f"The sign-in took longer than {PENDING_LIFETIME.seconds // 60} minutes")
    if args.get("error"):
        _fail(integration, describe_refusal(args["error"], aadsts_code(None, args.get("error_description"))))
    if not args.get("code"):
        _fail(integration, "Microsoft sent no authorization code")
    answer = _redeem(integration, args["code"], pending["code_verifier"])
    profile = _account_of(integration, answer)
    if account_switch.is_switch(integration, profile["userPrincipalName"]):
        return SignInOutcome(integration, account_switch.offer_switch(integration, user, answer, profile))
    link = _save_connection(integration, answer, profile)
    activate_link(link.id)
    db.session.commit()
    resume_parked(integration.id)
    log.info("Integration %s connected to Microsoft", integration.id)
    return SignInOutcome(integration)


def disconnect(integration):
    """Forget *integration*'s account and stop its sync; its settings and calendar links stay.

    Returns how many subscriptions are queued for deletion in Graph. Those deletions need
    the stored tokens, so when there are any the tokens stay until the deletion job has run
    (it drops them); otherwise they are deleted now. Nothing here calls Microsoft.
    """
    queued = unsubscribe_all(integration)
    if not queued:
        integration.token = None  # delete-orphan removes the stored row
    integration.connection_state = CONNECTION_NOT_CONNECTED
    integration.connection_error = None
    integration.connected_account = None
    integration.connected_name = None
    db.session.commit()
    forget_application_token(integration.id)
    log.info("Integration %s disconnected from Microsoft; %d subscription deletion(s) queued", integration.id, queued)
    return queued


def disconnect_progress(integration):
    """The subscription deletions of a disconnect still to run or parked (a ``PendingDisconnect``), or None."""
    return disconnect_deletions(integration.id)


# --- Pending sign-ins in the Flask session ----------------------------------------------


def _remember_pending(state, entry):
    pending = dict(session.get(PENDING_KEY) or {})
    pending[state] = entry
    newest = sorted(pending.items(), key=lambda item: item[1]["started_at"])[-MAX_PENDING:]
    session[PENDING_KEY] = dict(newest)


def _take_pending(state):
    """Remove and return the pending sign-in under *state*: each state is good for one answer."""
    pending = dict(session.get(PENDING_KEY) or {})
    entry = pending.pop(state, None) if isinstance(state, str) else None
    session[PENDING_KEY] = pending
    return entry


def _take_pending_of(user_id):
    pending = dict(session.get(PENDING_KEY) or {})
    mine = [entry for entry in pending.values() if entry["user_id"] == user_id]
    session[PENDING_KEY] = {state: entry for state, entry in pending.items() if entry["user_id"] != user_id}
    return mine


def _reject_unmatched_answer(user):
    """An answer whose state matches no sign-in this user started here: ignore it, say so.

    The sign-ins this user did start are abandoned, since their answer can no longer be
    told apart from a forged one; their integrations stay as they were.
    """
    abandoned = []
    for entry in _take_pending_of(user.id):
        integration = db.session.get(Integration, entry["integration_id"])
        if integration is not None and user.can_access(integration.organisation_id):
            audit_log.record(integration, audit_log.SIGN_IN_FAILED, STATE_MISMATCH_REASON + ".")
            abandoned.append(integration)
    db.session.commit()
    log.warning(
        "OAuth callback for user %s carried an unknown state; %d pending sign-in(s) abandoned",
        user.id,
        len(abandoned),
    )
    return SignInFailed(
        "The answer from Microsoft does not belong to a sign-in started here, so it was ignored. " + AGAIN,
        abandoned[0] if len(abandoned) == 1 else None,
    )


def _pending_integration(pending, user):
    integration = db.session.get(Integration, pending["integration_id"])
    if integration is None or not user.can_access(integration.organisation_id):
        raise SignInFailed("The integration of this sign-in no longer exists.")
    if not integration.is_delegated:
        raise SignInFailed(
            "This integration now uses application permissions, so the sign-in was not stored.", integration
        )
    return integration


# --- Redeeming the answer ---------------------------------------------------------------


def _fail(integration, reason, *, next_step=None):
    audit_log.record(integration, audit_log.SIGN_IN_FAILED, f"{reason}.")
    db.session.commit()
    log.warning("Sign-in for integration %s failed: %s", integration.id, reason)
    raise SignInFailed(f"The sign-in did not complete: {reason}. {next_step or _unchanged(integration)}", integration)


def _unchanged(integration):
    if integration.connection_state == CONNECTION_CONNECTED and integration.connected_account:
        return f"The integration still syncs {integration.connected_account}'s calendar; nothing was changed."
    return AGAIN


def _redeem(integration, code, code_verifier):
    # The sign-in itself, so it stays in the request: one POST, never retried, bounded by
    # the token endpoint's (connect, read) timeout, far inside gunicorn's 60 s.
    try:
        answer = redeem_authorization_code(ClientSettings.of(integration), code, code_verifier, oauth_redirect_uri())
    except ReconnectRequired as refusal:
        _fail(integration, refusal.reason)
    except TokenError as failure:
        _fail(integration, str(failure), next_step="Nothing was changed: connect again in a moment.")
    if not answer.get("refresh_token"):
        _fail(integration, "Microsoft issued no refresh token (the offline_access permission is missing)")
    return answer


def _account_of(integration, answer):
    """The signed-in account (``userPrincipalName``, ``displayName``), read from the answer's ID token.

    The ID token's signature is not checked: it came straight from Microsoft's token
    endpoint over TLS, in answer to this request, which OpenID Connect Core 1.0 (3.1.3.7)
    accepts in place of the signature. Its claims only name the account shown in the
    portal; the access token, not the ID token, authorises every Graph call.
    """
    claims = _id_token_claims(answer.get("id_token"))
    if claims is None:
        _fail(integration, "Microsoft sent no readable ID token (the openid permission is missing)")
    audience = claims.get("aud")
    if isinstance(audience, str) and audience.lower() != integration.client_id.lower():
        _fail(integration, "Microsoft's ID token was issued to another app")
    account = claims.get("preferred_username")
    if not isinstance(account, str) or not account.strip():
        _fail(integration, "Microsoft's ID token names no account (preferred_username is missing)")
    name = claims.get("name")
    return {"userPrincipalName": account.strip(), "displayName": name if isinstance(name, str) else None}


def _id_token_claims(id_token):
    """The claims of a JWT as a dict, decoded without a network call; ``None`` if it is not a readable JWT."""
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _save_connection(integration, answer, profile):
    account = profile["userPrincipalName"]
    if integration.token is None:
        integration.token = OAuthToken()
    store_delegated_token(integration.token, answer)
    integration.connected_account = account
    integration.connected_name = profile.get("displayName")
    integration.connection_state = CONNECTION_CONNECTED
    integration.connection_error = None
    link = _ensure_own_calendar_link(integration, account)
    account_switch.discard_offers(integration)
    try:
        db.session.commit()
    except IntegrityError:
        # Two sign-ins of one integration finished at the same moment; the other one won.
        db.session.rollback()
        raise SignInFailed("Another sign-in for this integration finished at the same time; reload the page.") from None
    return link


def _ensure_own_calendar_link(integration, account):
    """The one ``me`` link of a delegated integration, on its object (created if missing), syncing *account*.

    Another account than the link's never gets here: that is a switch (`app.oauth.account_switch`).
    """
    link = account_switch.own_calendar(integration)
    if link is None:
        link = CalendarLink(integration_id=integration.id, mailbox=MAILBOX_ME, object_id=integration.object_id)
        db.session.add(link)
    link.object_id = integration.object_id
    link.account = account
    return link
