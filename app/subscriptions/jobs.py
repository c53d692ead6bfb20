"""Subscriptions as jobs: created when a calendar becomes active, renewed on schedule.

Creating a subscription makes Graph call our webhook back before it answers, so it never
happens inside a portal request; the portal queues a job and the job pool does the work.
"""

import logging
from dataclasses import dataclass
from datetime import time, timedelta

from sqlalchemy import String, cast

from app import clock
from app.extensions import db
from app.graph.client import BatchRequest
from app.graph.errors import GraphError
from app.graph.tokens import DisconnectTokenProvider, ReconnectRequired, TokenError, graph_client_for
from app.jobs import queue
from app.jobs.handlers import enqueue_link_sync, handler
from app.models import CalendarLink, Integration, SyncLogEntry
from app.models.integration import CONNECTION_CONNECTED
from app.models.job import JOB_FAILED, JOB_RUNNING, Job
from app.scheduler.periodic import next_time_of_day, periodic
from app.subscriptions import lifecycle

log = logging.getLogger(__name__)

SUBSCRIBE_LINK = "subscribe_link"
RENEW_SUBSCRIPTION = "renew_subscription"
RECREATE_SUBSCRIPTION = "recreate_subscription"
DELETE_SUBSCRIPTION = "delete_subscription"
RENEW_INTEGRATION_SUBSCRIPTIONS = "renew_integration_subscriptions"
SWEEP_SUBSCRIPTIONS = "sweep_subscriptions"
# The kinds of job that may create a subscription of a link.
CREATING_KINDS = (SUBSCRIBE_LINK, RECREATE_SUBSCRIPTION, RENEW_SUBSCRIPTION)
ORPHAN_DELETED = "orphan_deleted"
#: When the daily sweep for subscriptions no link knows is due, in UTC.
SWEEP_AT = time(4, 0)
SWEEP_AFTER_UNANSWERED_CREATE = timedelta(minutes=1)
# The sweep queued after a lost answer has a key of its own: the daily one's time stays when coalesced.
UNANSWERED_CREATE_KEY_SUFFIX = "/after-unanswered-create"


class SubscriptionsBeingCreated(Exception):
    """A sweep met a create in flight, whose subscription is in Graph but not yet on its link."""

    is_transient = True


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
    """Forget every subscription of `integration` and queue their deletion in Graph; return how many are queued.

    Used on disconnect, which must not wait on Graph. The deletion job
    (`run_finish_disconnect`) needs a token to authorise it, so while this returns more
    than zero the caller keeps the stored tokens: the job drops them once the deletions have
    run. Deletions a parked disconnect job never made are queued again. Joins the caller's
    transaction.
    """
    links = db.session.scalars(
        db.select(CalendarLink).where(
            CalendarLink.integration_id == integration.id, CalendarLink.subscription_id.is_not(None)
        )
    ).all()
    subscription_ids = {link.subscription_id for link in links} | _parked_deletions(integration.id)
    for link in links:
        lifecycle.forget(link)
    if subscription_ids:
        # The method that made the subscriptions authorises their deletion, even when the
        # integration switches method in the same transaction.
        payload = {AUTH_MODE_KEY: integration.auth_mode, **_deletions_payload(subscription_ids)}
        queue.enqueue(FINISH_DISCONNECT, str(integration.id), payload=payload)
    return len(subscription_ids)


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
    try:
        lifecycle.subscribe(link, client)
    except GraphError as error:
        if lifecycle.is_unanswered_create(error):
            _queue_sweep_after_unanswered_create(link.integration_id)
        raise
    enqueue_link_sync(link.id)


def _queue_sweep_after_unanswered_create(integration_id):
    """Graph may hold a subscription whose id never reached us: look for it once the create job is done.

    Committed on its own, since the failing job's own transaction is rolled back.
    """
    db.session.rollback()
    run_at = clock.utcnow() + SWEEP_AFTER_UNANSWERED_CREATE
    queue.enqueue(SWEEP_SUBSCRIPTIONS, f"{integration_id}{UNANSWERED_CREATE_KEY_SUFFIX}", run_at=run_at)
    db.session.commit()


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


@periodic("sweep_orphan_subscriptions")
def queue_subscription_sweeps(now):
    """Make sure every connected integration with calendars has a sweep queued for the next SWEEP_AT (UTC).

    Hourly, so the daily sweep survives restarts; a sweep already pending keeps its time. Commits.
    """
    integration_ids = db.session.scalars(
        db.select(Integration.id)
        .join(CalendarLink, CalendarLink.integration_id == Integration.id)
        .where(Integration.connection_state == CONNECTION_CONNECTED)
        .distinct()
    ).all()
    run_at = next_time_of_day(now, SWEEP_AT)
    for integration_id in sorted(integration_ids):
        queue.enqueue(SWEEP_SUBSCRIPTIONS, str(integration_id), run_at=run_at)
    db.session.commit()


@handler(SWEEP_SUBSCRIPTIONS)
def run_sweep_subscriptions(key, payload):
    """Delete the subscriptions Graph holds for this portal (as this integration sees them) that no link knows.

    They come from creates whose answer was lost, or links removed while Graph was out of
    reach. While a subscription of the integration is being created, its id is not stored
    yet: the sweep then waits and is tried again.
    """
    integration = db.session.get(Integration, int(key.removesuffix(UNANSWERED_CREATE_KEY_SUFFIX)))
    if integration is None or integration.connection_state != CONNECTION_CONNECTED:
        return
    client = graph_client_for(integration)
    listed = lifecycle.list_ours(client)
    if _subscriptions_being_created(integration.id):
        raise SubscriptionsBeingCreated(f"subscriptions of integration {integration.id} are being created")
    known = lifecycle.known_subscription_ids()
    for subscription in listed:
        if subscription["id"] in known:
            continue
        lifecycle.delete_remote(client, subscription["id"])
        reason = (
            f"Deleted subscription {subscription['id']} on {subscription.get('resource') or 'an unknown resource'}: "
            "no calendar of this portal knows it (a create whose answer was lost, or a calendar removed meanwhile)."
        )
        log.warning("Integration %s: %s", integration.id, reason)
        db.session.add(
            SyncLogEntry(
                organisation_id=integration.organisation_id,
                integration_id=integration.id,
                action=ORPHAN_DELETED,
                reason=reason,
            )
        )
        db.session.commit()


def _subscriptions_being_created(integration_id):
    link_keys = db.select(cast(CalendarLink.id, String)).where(CalendarLink.integration_id == integration_id)
    running = db.select(Job.id).where(Job.kind.in_(CREATING_KINDS), Job.state == JOB_RUNNING, Job.key.in_(link_keys))
    return db.session.scalar(db.select(running.exists()))


@periodic("create_missing_subscriptions")
def create_missing_subscriptions(now):
    """Queue a subscription for every active link without a live one. Commits."""
    links = lifecycle.links_missing_a_subscription(now)
    for link in links:
        queue.enqueue(SUBSCRIBE_LINK, str(link.id))
    db.session.commit()
    return [link.id for link in links]


# -- finishing a disconnect ---------------------------------------------------------------

FINISH_DISCONNECT = "finish_disconnect"
#: Payload keys of a disconnect job: one per subscription, so coalesced jobs keep them all
#: (`queue.merge_payloads` unions keys) and the queue's retries keep them too.
DELETION_PREFIX = "subscription:"
#: Payload key of the connection method the subscriptions were made with.
AUTH_MODE_KEY = "auth_mode"


@dataclass(frozen=True)
class PendingDisconnect:
    """A disconnect job still to run (`queued`, `running`) or parked (`failed`), and what it deletes."""

    state: str
    subscriptions: int
    error: str | None


def disconnect_deletions(integration_id):
    """The integration's disconnect job still to run, else its parked one, as a :class:`PendingDisconnect`; or None."""
    job = db.session.scalar(
        db.select(Job)
        .where(Job.kind == FINISH_DISCONNECT, Job.key == str(integration_id))
        .order_by(Job.state == JOB_FAILED, Job.id.desc())
    )
    if job is None:
        return None
    return PendingDisconnect(job.state, len(_subscription_ids(job.payload)), job.last_error)


@handler(FINISH_DISCONNECT)
def run_finish_disconnect(key, payload):
    """Delete a disconnected integration's subscriptions in Graph, then drop its stored tokens.

    Best effort: a token Microsoft refuses, or a deletion Graph refuses, is logged, and the
    subscription expires by itself within three days. A transient failure fails the job
    with the tokens still stored, so the queue's retry can still authorise the deletions.
    An integration connected again meanwhile keeps its (new) tokens.
    """
    integration = db.session.get(Integration, int(key))
    if integration is None:
        return  # deleted with its tokens: nothing is left to authorise a deletion
    subscription_ids = sorted(_subscription_ids(payload))
    try:
        _delete_subscriptions(integration, subscription_ids, payload.get(AUTH_MODE_KEY))
    except ReconnectRequired as refusal:
        log.warning("Subscriptions of disconnected integration %s not deleted: %s", integration.id, refusal)
    # An application integration (switched since) has no use for a delegated token.
    if integration.connection_state != CONNECTION_CONNECTED or not integration.is_delegated:
        integration.token = None  # delete-orphan removes the stored row
    db.session.commit()
    log.info("Integration %s: disconnect finished, %d subscription(s) handled", integration.id, len(subscription_ids))


def take_over_disconnect_deletions(integration_id):
    """Remove the integration's disconnect jobs not yet running; return the subscription ids they were to delete.

    A switch to another account deletes them itself, with the tokens of the account that
    made them, which the disconnect job would no longer find. Joins the caller's transaction.
    """
    jobs = db.session.scalars(
        db.select(Job).where(Job.kind == FINISH_DISCONNECT, Job.key == str(integration_id), Job.state != JOB_RUNNING)
    ).all()
    taken = set()
    for job in jobs:
        taken |= _subscription_ids(job.payload)
        db.session.delete(job)
    return taken


def _delete_subscriptions(integration, subscription_ids, auth_mode):
    provider = DisconnectTokenProvider(integration, auth_mode=auth_mode)
    client = graph_client_for(integration, token_provider=provider)
    results = client.batch(
        [BatchRequest(str(number), "DELETE", f"/subscriptions/{sid}") for number, sid in enumerate(subscription_ids)]
    )
    # 404: gone already, exactly what was wanted.
    failed = [result for result in results if not result.ok and result.status != 404]
    retry = [result.error for result in failed if result.error.is_transient]
    if retry:
        raise retry[0]  # the retry deletes all again; what is gone by then answers 404
    if failed:
        log.warning("%d subscription(s) of integration %s were not deleted", len(failed), integration.id)


def _deletions_payload(subscription_ids):
    return {f"{DELETION_PREFIX}{sid}": True for sid in subscription_ids}


def _subscription_ids(payload):
    return {
        name.removeprefix(DELETION_PREFIX)
        for name, value in payload.items()
        if name.startswith(DELETION_PREFIX) and value
    }


def _parked_deletions(integration_id):
    parked = db.session.scalars(
        db.select(Job).where(Job.kind == FINISH_DISCONNECT, Job.key == str(integration_id), Job.state == JOB_FAILED)
    )
    return {sid for job in parked for sid in _subscription_ids(job.payload)}
