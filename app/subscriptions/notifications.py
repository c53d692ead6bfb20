"""Routing of Graph change and lifecycle notifications to calendar links.

Only records work: each accepted notification queues a job and nothing calls Graph,
so the endpoint answers well within Graph's three-second limit. A body costs one commit
however many notifications it carries, and a subscription's link is read from the
database at most once per half minute per process (`routing`).
"""

import hmac
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from app import clock
from app.extensions import db
from app.jobs import queue
from app.jobs.handlers import SYNC_LINK, enqueue_link_sync
from app.models import CalendarLink
from app.subscriptions import routing
from app.subscriptions.jobs import RECREATE_SUBSCRIPTION, RENEW_SUBSCRIPTION

log = logging.getLogger(__name__)

# How stale a link's "last notification" may get before a notification rewrites it: the
# alert rule that reads it ("webhook silent") thinks in hours, and a write per
# notification would make every notification of a busy room contend for its row.
NOTIFIED_AT_RESOLUTION = timedelta(minutes=1)

# The fields of a notification this code reads. clientState and lifecycleEvent may be absent.
READ_FIELDS = ("subscriptionId", "clientState", "lifecycleEvent")
# Graph allows a clientState of up to 255 characters and its ids are far shorter: a longer
# value is no notification of ours, and would only cost time to compare.
MAX_FIELD_CHARS = 255


@dataclass
class Outcome:
    accepted: int = 0
    unknown_subscription: int = 0
    wrong_client_state: int = 0
    malformed: int = 0
    # Links that had at least one notification accepted: `routing.Route`s by link id.
    links: dict = field(default_factory=dict)
    # Accepted notifications counted by the integration of their link.
    accepted_by_integration: Counter = field(default_factory=Counter)

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


def route_notifications(items, on_valid=None):
    """Accept each item whose subscription and clientState check out; `on_valid(link, item)` if given.

    Items are judged one by one: a forged, stale or malformed item never spoils the rest of
    the batch. The links are `routing.Route`s, not loaded models.
    """
    usable = [item for item in items if _well_formed(item)]
    outcome = Outcome(malformed=len(items) - len(usable))
    subscription_ids = {item["subscriptionId"] for item in usable}
    links = routing.routes().lookup(subscription_ids) if subscription_ids else {}
    for item in usable:
        link = links.get(item["subscriptionId"])
        if link is None:
            outcome.unknown_subscription += 1
            continue
        if not _same_secret(item.get("clientState"), link.subscription_client_state):
            outcome.wrong_client_state += 1
            continue
        if on_valid is not None:
            on_valid(link, item)
        outcome.accepted += 1
        outcome.links[link.id] = link
        outcome.accepted_by_integration[link.integration_id] += 1
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


def _well_formed(item):
    """Whether `item` is an object with a subscriptionId, and every field read from it is usable text."""
    if not isinstance(item, dict) or not item.get("subscriptionId"):
        return False
    return all(item.get(name) is None or _usable_text(item[name]) for name in READ_FIELDS)


def _usable_text(value):
    """Whether `value` is a string that can be compared, encoded as UTF-8 and bound in a query."""
    # PostgreSQL refuses a NUL character even as a query parameter.
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, which a JSON escape such as "\ud800" can carry
        return False
    return True


def queue_syncs(outcome):
    """Changes were announced: one pending sync per enabled link, and the links' notified-at stamp.

    Joins the caller's transaction.
    """
    links = outcome.links.values()
    queue.ensure_queued(SYNC_LINK, [link.id for link in links if link.enabled])
    now = clock.utcnow()
    stale = {
        link.id
        for link in links
        if link.last_notification_at is None or now - link.last_notification_at >= NOTIFIED_AT_RESOLUTION
    }
    if stale:
        db.session.execute(
            db.update(CalendarLink)
            .where(CalendarLink.id.in_(sorted(stale)))
            .values(last_notification_at=now)
            .execution_options(synchronize_session=False)
        )
        for link in links:
            if link.id in stale:
                link.last_notification_at = now


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
