"""Graph change-notification subscriptions: one per calendar link, kept alive by renewal.

A subscription lives 3 days and is renewed once it is within 2 days of expiry, so a
missed renewal run or two costs nothing. Renewals of many rooms go through `$batch`.
"""

import logging
import secrets
from datetime import UTC, datetime, timedelta

from app import clock
from app.extensions import db
from app.graph.client import BatchRequest
from app.graph.errors import UNANSWERED_STATUS, GraphBadRequest, GraphNotFound, GraphTransportError
from app.graph.paths import mailbox_path
from app.models import CalendarLink, Integration
from app.models.integration import CONNECTION_CONNECTED
from app.public_urls import lifecycle_notification_url, notification_url

log = logging.getLogger(__name__)

LIFETIME = timedelta(days=3)
# Older Graph versions capped Outlook subscriptions at 4,230 minutes and answered a longer
# request with ExtensionError; a little under that cap is the fallback.
FALLBACK_LIFETIME = timedelta(minutes=4200)
RENEW_WITHIN = timedelta(days=2)
CHANGE_TYPES = "created,updated,deleted"


def subscribe(link, client):
    """Create a subscription for `link`, replacing (and deleting) any it had."""
    if link.subscription_id:
        delete_remote(client, link.subscription_id)
    client_state = secrets.token_urlsafe(32)
    body = {
        "changeType": CHANGE_TYPES,
        "notificationUrl": notification_url(),
        "lifecycleNotificationUrl": lifecycle_notification_url(),
        "resource": f"{mailbox_path(link)}/events",
        "clientState": client_state,
    }
    # Never sent twice blindly: a create has no transactionId, so a resend after a lost
    # answer could leave a second subscription in Graph (see `is_unanswered_create`).
    created = _with_fallback_lifetime(
        lambda lifetime: client.post("subscriptions", json=_expiring(body, lifetime), retry_unanswered=False)
    )
    link.subscription_id = created["id"]
    link.subscription_expires_at = _parse_expiry(created.get("expirationDateTime"))
    link.subscription_client_state = client_state
    link.subscription_error = None
    log.info("Subscribed link %s (%s) until %s", link.id, link.mailbox, link.subscription_expires_at)


def renew(link, client):
    """Extend the link's subscription; one that Graph no longer knows is created again."""
    if not link.subscription_id:
        subscribe(link, client)
        return
    try:
        renewed = _with_fallback_lifetime(
            lambda lifetime: client.patch(f"subscriptions/{link.subscription_id}", json=_expiring({}, lifetime))
        )
    except GraphNotFound:
        forget(link)
        subscribe(link, client)
        return
    link.subscription_expires_at = _parse_expiry((renewed or {}).get("expirationDateTime"))
    link.subscription_error = None


def renew_batch(links, client):
    """Renew many links of one integration through `$batch`: 20 renewals a request.

    Returns the links whose subscription Graph no longer knows; the caller recreates them.
    Other failures are recorded on their link and retried at the next run.
    """
    gone = []
    pending = {str(link.id): link for link in links}
    for lifetime in (LIFETIME, FALLBACK_LIFETIME):
        capped = _renew_round(pending, lifetime, client, gone)
        if not capped:
            break
        # A tenant that caps the lifetime caps it for every room: the shorter lifetime
        # goes out as batches too, never as one request per room.
        log.info(
            "Graph refused a %s subscription lifetime for %d link(s); using %s",
            lifetime,
            len(capped),
            FALLBACK_LIFETIME,
        )
        pending = capped
    return gone


def _renew_round(pending, lifetime, client, gone):
    """One `$batch` pass over `pending` asking for `lifetime`; returns the links refused it as too long."""
    requested_expiry = clock.utcnow() + lifetime
    results = client.batch(
        [
            BatchRequest(
                id=key,
                method="PATCH",
                url=f"/subscriptions/{link.subscription_id}",
                body={"expirationDateTime": _graph_time(requested_expiry)},
            )
            for key, link in pending.items()
        ]
    )
    capped = {}
    for result in results:
        link = pending[result.id]
        if result.ok:
            granted = (result.body or {}).get("expirationDateTime")
            link.subscription_expires_at = _parse_expiry(granted, requested_expiry)
            link.subscription_error = None
        elif isinstance(result.error, GraphNotFound):
            forget(link)
            gone.append(link)
        elif _lifetime_refused(result.error) and lifetime != FALLBACK_LIFETIME:
            capped[result.id] = link
        else:
            link.subscription_error = str(result.error)
            log.warning("Renewal of link %s failed: %s", link.id, result.error)
    return capped


def unsubscribe(link, client):
    """Delete the link's subscription in Graph (if it still exists) and forget it."""
    if link.subscription_id:
        delete_remote(client, link.subscription_id)
    forget(link)


def delete_remote(client, subscription_id):
    try:
        client.delete(f"subscriptions/{subscription_id}")
    except GraphNotFound:
        pass  # already gone: exactly what was wanted


def is_unanswered_create(error):
    """Whether a failed create may have created the subscription in Graph all the same."""
    return isinstance(error, GraphTransportError) or getattr(error, "status", None) == UNANSWERED_STATUS


def list_ours(client):
    """The subscriptions `client` may see (app-only: the app's; delegated: the user's) that notify this portal."""
    ours = notification_url()
    return [
        subscription
        for page in client.iter_pages("subscriptions")
        for subscription in page.get("value") or []
        if subscription.get("notificationUrl") == ours
    ]


def known_subscription_ids():
    """Every subscription id a calendar link of this portal holds, whatever its integration."""
    return set(
        db.session.scalars(db.select(CalendarLink.subscription_id).where(CalendarLink.subscription_id.is_not(None)))
    )


def links_due_for_renewal(now, integration_id=None):
    """Enabled links of connected integrations (or of the one given) whose subscription expires within two days."""
    query = _active_links().where(
        CalendarLink.subscription_id.is_not(None),
        CalendarLink.subscription_expires_at < now + RENEW_WITHIN,
    )
    if integration_id is not None:
        query = query.where(CalendarLink.integration_id == integration_id)
    return db.session.scalars(query).all()


def links_missing_a_subscription(now):
    """Enabled links of connected integrations with no subscription, or one already expired."""
    return db.session.scalars(
        _active_links().where((CalendarLink.subscription_id.is_(None)) | (CalendarLink.subscription_expires_at <= now))
    ).all()


def _active_links():
    return (
        db.select(CalendarLink)
        .join(CalendarLink.integration)
        .where(CalendarLink.enabled.is_(True), Integration.connection_state == CONNECTION_CONNECTED)
        .order_by(CalendarLink.integration_id, CalendarLink.id)
    )


def forget(link):
    link.subscription_id = None
    link.subscription_expires_at = None
    link.subscription_client_state = None


def _with_fallback_lifetime(call):
    try:
        return call(LIFETIME)
    except GraphBadRequest as error:
        if not _lifetime_refused(error):
            raise
        log.info("Graph refused a %s subscription lifetime (%s); using %s", LIFETIME, error.message, FALLBACK_LIFETIME)
        return call(FALLBACK_LIFETIME)


def _lifetime_refused(error):
    return isinstance(error, GraphBadRequest) and error.code == "ExtensionError"


def _expiring(body, lifetime):
    return {**body, "expirationDateTime": _graph_time(clock.utcnow() + lifetime)}


def _graph_time(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _parse_expiry(value, default=None):
    if not value:
        return default or clock.utcnow() + LIFETIME
    whole_seconds = value.rstrip("Z").split(".")[0]
    return datetime.fromisoformat(whole_seconds).replace(tzinfo=UTC)
