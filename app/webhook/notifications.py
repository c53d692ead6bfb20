"""Routing of Graph change and lifecycle notifications to calendar links.

Only records work: each accepted notification queues a job and nothing calls Graph,
so the endpoint answers well within Graph's three-second limit.
"""

import hmac
import logging
from dataclasses import dataclass, field

from app.extensions import db
from app.jobs import queue
from app.jobs.handlers import enqueue_link_sync
from app.models import CalendarLink
from app.subscription_jobs import RECREATE_SUBSCRIPTION, RENEW_SUBSCRIPTION

log = logging.getLogger(__name__)



@dataclass
class Outcome:
    accepted: int = 0
    unknown_subscription: int = 0
    wrong_client_state: int = 0
    malformed: int = 0
    # Links that had at least one notification accepted.
    link_ids: set = field(default_factory=set)

    @property
    def rejected(self):
        return self.unknown_subscription + self.wrong_client_state + self.malformed

    def as_dict(self):
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "unknown_subscription": self.unknown_subscription,
            "wrong_client_state": self.wrong_client_state,
            "malformed": self.malformed,
        }


def route_notifications(items, on_valid):
    """Call `on_valid(link, item)` for each item whose subscription and clientState check out.

    Items are judged one by one: a forged or stale item never spoils the rest of the batch.
    """
    outcome = Outcome()
    subscription_ids = {item.get("subscriptionId") for item in items if isinstance(item, dict)}
    subscription_ids.discard(None)
    links = {}
    if subscription_ids:
        rows = db.session.scalars(
            db.select(CalendarLink).where(CalendarLink.subscription_id.in_([str(s) for s in subscription_ids]))
        )
        links = {link.subscription_id: link for link in rows}
    for item in items:
        if not isinstance(item, dict) or not item.get("subscriptionId"):
            outcome.malformed += 1
            continue
        link = links.get(str(item["subscriptionId"]))
        if link is None:
            outcome.unknown_subscription += 1
            continue
        if not _same_secret(item.get("clientState"), link.subscription_client_state):
            outcome.wrong_client_state += 1
            continue
        on_valid(link, item)
        outcome.accepted += 1
        outcome.link_ids.add(link.id)
    if outcome.rejected:
        log.warning(
            "Dropped %d of %d notification(s): %d unknown subscription, %d wrong clientState, %d malformed",
            outcome.rejected,
            len(items),
            outcome.unknown_subscription,
            outcome.wrong_client_state,
            outcome.malformed,
        )
    return outcome


def queue_sync(link, item):
    if link.enabled:
        enqueue_link_sync(link.id)


def queue_lifecycle_work(link, item):
    """What Graph's lifecycle events ask for: keep the subscription alive, catch up with delta."""
    event = item.get("lifecycleEvent")
    if event == "reauthorizationRequired":
        # A PATCH renewal also reauthorizes, and moves the expiry forward as well.
        queue.enqueue(RENEW_SUBSCRIPTION, str(link.id))
    elif event == "subscriptionRemoved":
        queue.enqueue(RECREATE_SUBSCRIPTION, str(link.id))
        enqueue_link_sync(link.id)
    elif event == "missed":
        enqueue_link_sync(link.id)
    else:
        log.info("Ignored lifecycle event %r for link %s", event, link.id)


def _same_secret(given, stored):
    if not isinstance(given, str) or not stored:
        return False
    return hmac.compare_digest(given.encode(), stored.encode())
