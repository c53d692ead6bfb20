"""Subscriptions as jobs: created when a calendar becomes active, renewed on schedule.

Creating a subscription makes Graph call our webhook back before it answers, so it never
happens inside a portal request; the portal queues a job and the job pool does the work.
"""

import logging

from app import clock
from app.extensions import db
from app.graph.client import BatchRequest
from app.graph.errors import GraphError
from app.graph.tokens import TokenError, graph_client_for
from app.jobs import queue
from app.jobs.handlers import enqueue_link_sync, handler
from app.models import CalendarLink, Integration
from app.models.integration import CONNECTION_CONNECTED
from app.scheduler.periodic import periodic
from app.subscriptions import lifecycle

log = logging.getLogger(__name__)

SUBSCRIBE_LINK = "subscribe_link"
RENEW_SUBSCRIPTION = "renew_subscription"
RECREATE_SUBSCRIPTION = "recreate_subscription"
DELETE_SUBSCRIPTION = "delete_subscription"
RENEW_INTEGRATION_SUBSCRIPTIONS = "renew_integration_subscriptions"


def activate_link(link_id):
    """A link just became active (connected, added or enabled): subscribe it and sync it.

    Joins the caller's transaction.
    """
    queue.enqueue(SUBSCRIBE_LINK, str(link_id))
    enqueue_link_sync(link_id)


def deactivate_link(link):
    """A link is being removed or disabled: its subscription is deleted in Graph by a job.

    The job carries what it needs, because the link row may be gone when it runs.
    Joins the caller's transaction.
    """
    if link.subscription_id:
        queue.enqueue(DELETE_SUBSCRIPTION, link.subscription_id, payload={"integration_id": link.integration_id})
    lifecycle.forget(link)


def unsubscribe_all(integration):
    """Delete every subscription of `integration` in Graph now, while its tokens still work.

    Used on disconnect, which deletes those tokens next. Best effort: what fails is logged
    and expires by itself within three days; the links forget their subscriptions anyway.
    """
    links = db.session.scalars(
        db.select(CalendarLink).where(
            CalendarLink.integration_id == integration.id, CalendarLink.subscription_id.is_not(None)
        )
    ).all()
    if not links:
        return
    try:
        results = graph_client_for(integration).batch(
            [BatchRequest(str(link.id), "DELETE", f"/subscriptions/{link.subscription_id}") for link in links]
        )
        failed = [r for r in results if not r.ok and r.status != 404]
        if failed:
            log.warning("%d subscription(s) of integration %s were not deleted", len(failed), integration.id)
    except (GraphError, TokenError) as error:
        log.warning("Subscriptions of integration %s not deleted: %s", integration.id, error)
    for link in links:
        lifecycle.forget(link)


@handler(SUBSCRIBE_LINK)
def run_subscribe(key, payload):
    _with_active_link(key, _subscribe_then_sync)


@handler(RECREATE_SUBSCRIPTION)
def run_recreate(key, payload):
    _with_active_link(key, _subscribe_then_sync)


def _subscribe_then_sync(link, client):
    """Create the link's subscription and, in the same commit as its id, queue a sync of the link.

    Graph notifies a new subscription as soon as it has validated it, before the create
    call returns, so the first notifications name an id not stored yet and cannot be
    routed. The sync, which can only start once the id is stored, catches what they
    announced and whatever changed since the link's last sync (coalesced with a sync
    still pending).
    """
    lifecycle.subscribe(link, client)
    enqueue_link_sync(link.id)


@handler(RENEW_SUBSCRIPTION)
def run_renew(key, payload):
    _with_active_link(key, lifecycle.renew)


@handler(DELETE_SUBSCRIPTION)
def run_delete(key, payload):
    integration = db.session.get(Integration, payload.get("integration_id"))
    if integration is None or integration.connection_state != CONNECTION_CONNECTED:
        return  # nothing can authorise the deletion; the subscription expires on its own
    lifecycle.delete_remote(graph_client_for(integration), key)


def _with_active_link(key, action):
    link = db.session.get(CalendarLink, int(key))
    if link is None or not link.enabled or link.integration.connection_state != CONNECTION_CONNECTED:
        return
    try:
        action(link, graph_client_for(link.integration))
    except (GraphError, TokenError) as error:
        db.session.rollback()
        link = db.session.get(CalendarLink, int(key))
        link.subscription_error = str(error)
        db.session.commit()
        raise
    db.session.commit()


@periodic("renew_subscriptions")
def renew_subscriptions(now):
    """Queue one renewal job per integration that has subscriptions within two days of expiry.

    Returns the number of links due. Commits. The renewals themselves talk to Graph, so they
    run on the job threads (`run_renew_integration`), never on the scheduler's loop.
    """
    due = lifecycle.links_due_for_renewal(now)
    for integration_id in sorted({link.integration_id for link in due}):
        queue.enqueue(RENEW_INTEGRATION_SUBSCRIPTIONS, str(integration_id))
    db.session.commit()
    return len(due)


@handler(RENEW_INTEGRATION_SUBSCRIPTIONS)
def run_renew_integration(key, payload):
    """Renew the integration's subscriptions that are due, one `$batch` per 20 links.

    A subscription Graph no longer knows is queued for re-creation. A Graph or token
    failure fails the job, which the queue retries with backoff.
    """
    links = lifecycle.links_due_for_renewal(clock.utcnow(), integration_id=int(key))
    if not links:
        return
    gone = lifecycle.renew_batch(links, graph_client_for(links[0].integration))
    for link in gone:
        queue.enqueue(RECREATE_SUBSCRIPTION, str(link.id))
    db.session.commit()


@periodic("create_missing_subscriptions")
def create_missing_subscriptions(now):
    """Queue a subscription for every active link without a live one. Commits."""
    links = lifecycle.links_missing_a_subscription(now)
    for link in links:
        queue.enqueue(SUBSCRIBE_LINK, str(link.id))
    db.session.commit()
    return [link.id for link in links]
