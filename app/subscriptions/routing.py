"""Which calendar link each Graph subscription belongs to, remembered for a short while per process.

Every notification names its subscription, and reading the link for each one would cost
the endpoint a database round trip per request. Routes are kept for `ROUTE_SECONDS`: a
change made in this process (a room disabled, a subscription replaced) forgets them as
it commits (the session listeners at the end); one made in another process is seen
within that time. Until then the worst that happens is a queued sync that skips a
disabled room, or a sync queued by a notification of a subscription that was just
replaced, because the sync job reads the link again before it does anything. An unknown
subscription id is never remembered, so a subscription created a moment ago is found on
its first notification.
"""

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import CalendarLink

ROUTE_SECONDS = 30.0
# Each route is kept up to this much longer, at random, so routes read together (at
# start-up, or in a burst) are not all read again in the same instant.
ROUTE_JITTER = 0.5
EXTENSION = "ireserve_subscription_routes"
# The link columns a route depends on: a change to one of them makes routes stale.
ROUTING_ATTRIBUTES = ("subscription_id", "subscription_client_state", "enabled")


@dataclass
class Route:
    id: int
    integration_id: int
    subscription_id: str
    subscription_client_state: str | None
    enabled: bool
    # The link's notified-at stamp as this process last knew it; updated as it stamps.
    last_notification_at: datetime | None


class SubscriptionRoutes:
    def __init__(self, seconds=ROUTE_SECONDS, monotonic=time.monotonic):
        self.seconds = seconds
        self._monotonic = monotonic
        self._routes = {}  # subscription id -> (Route, expires at)
        self._lock = threading.Lock()
        # Counts `forget_all` calls: routes read before one must not be remembered after it.
        self._generation = 0
        self._swept_at = monotonic()

    def lookup(self, subscription_ids):
        """{subscription id: Route} for those of `subscription_ids` that belong to a link."""
        now = self._monotonic()
        found, missing = {}, []
        with self._lock:
            generation = self._generation
            for subscription_id in subscription_ids:
                cached = self._routes.get(subscription_id)
                if cached is not None and now < cached[1]:
                    found[subscription_id] = cached[0]
                else:
                    missing.append(subscription_id)
        if missing:
            read = _read_routes(CalendarLink.subscription_id.in_(missing))
            self._remember(read.values(), now, generation)
            found.update(read)
        return found

    def preload(self):
        """Read the routes of every subscribed link, so a fresh worker's first notifications find them."""
        generation = self._generation
        self._remember(_read_routes(CalendarLink.subscription_id.is_not(None)).values(), self._monotonic(), generation)

    def _remember(self, routes, now, generation):
        with self._lock:
            if generation != self._generation:
                return  # a link changed while these were read: they may be the old ones
            self._sweep(now)
            for route in routes:
                expires_at = now + self.seconds * (1 + ROUTE_JITTER * random.random())
                self._routes[route.subscription_id] = (route, expires_at)

    def forget_all(self):
        with self._lock:
            self._generation += 1
            self._routes.clear()

    def _sweep(self, now):
        # Routes of subscriptions that stopped notifying would otherwise stay for good.
        if now - self._swept_at < self.seconds:
            return
        self._swept_at = now
        for subscription_id, (_, expires_at) in list(self._routes.items()):
            if now >= expires_at:
                del self._routes[subscription_id]


def routes():
    """This app's routes (one set per app, so each test app starts empty)."""
    extensions = current_app.extensions
    if EXTENSION not in extensions:
        extensions[EXTENSION] = SubscriptionRoutes()
    return extensions[EXTENSION]


def _read_routes(condition):
    rows = db.session.execute(
        db.select(
            CalendarLink.id,
            CalendarLink.integration_id,
            CalendarLink.subscription_id,
            CalendarLink.subscription_client_state,
            CalendarLink.enabled,
            CalendarLink.last_notification_at,
        ).where(condition)
    )
    return {row.subscription_id: Route(**row._asdict()) for row in rows}


# -- forgetting on this process's own changes -------------------------------------------

_STALE_FLAG = "ireserve_subscription_routes_stale"


@event.listens_for(Session, "after_flush")
def _note_link_changes(session, flush_context):
    deleted = any(isinstance(instance, CalendarLink) for instance in session.deleted)
    if deleted or any(isinstance(instance, CalendarLink) and _routing_changed(instance) for instance in session.dirty):
        session.info[_STALE_FLAG] = True


@event.listens_for(Session, "after_commit")
def _forget_after_link_changes(session):
    # After the commit, not the flush: a webhook request of another thread could
    # otherwise read the old, still committed row back in between.
    if session.info.pop(_STALE_FLAG, False) and has_app_context():
        remembered = current_app.extensions.get(EXTENSION)
        if remembered is not None:
            remembered.forget_all()


@event.listens_for(Session, "after_rollback")
def _keep_routes_after_a_rollback(session):
    session.info.pop(_STALE_FLAG, None)


def _routing_changed(link):
    attributes = inspect(link).attrs
    return any(attributes[name].history.has_changes() for name in ROUTING_ATTRIBUTES)
