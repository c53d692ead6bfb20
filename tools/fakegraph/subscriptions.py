"""Change-notification subscriptions: create (with the validation handshake), renew, delete, deliver.

Creating a subscription POSTs `?validationToken=...` to the notificationUrl and to the
lifecycleNotificationUrl, and fails with 400 unless each answers 200 with the decoded
token as text/plain within ten seconds. Every change in a subscribed mailbox then
becomes a notification POSTed by a background thread after a short delay, carrying the
subscription's clientState; a receiver that answers anything but 2xx (or nothing within
three seconds) gets the delivery again after each of `notification_retry_delays`, after
which it is dropped. Expired subscriptions are forgotten, as Graph deletes them.

Graph demands https for both URLs; the stand-in also takes http, for local receivers.
"""

import heapq
import itertools
import logging
import secrets
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import requests
from flask import Blueprint, jsonify, request

from . import zones
from .access import GraphProblem, admit, authenticate, check_calendar_access, resolve_mailbox, world
from .state import Subscription

log = logging.getLogger(__name__)

bp = Blueprint("subscriptions", __name__, url_prefix="/v1.0")

CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("missed", "subscriptionRemoved", "reauthorizationRequired")
VALIDATION_TIMEOUT = 10
DELIVERY_TIMEOUT = 3
CLIENT_STATE_LIMIT = 128
NOT_FOUND = "The object was not found."


# -- the API ---------------------------------------------------------------------------


@bp.route("/subscriptions", methods=["POST"])
def create_subscription():
    principal = authenticate()
    admit(None)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise GraphProblem(400, "BadRequest", "The request body must be a JSON object.")
    change_types = _change_types(body.get("changeType"))
    notification_url = _url(body.get("notificationUrl"), "notificationUrl")
    lifecycle_url = (
        _url(body["lifecycleNotificationUrl"], "lifecycleNotificationUrl")
        if body.get("lifecycleNotificationUrl")
        else None
    )
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > CLIENT_STATE_LIMIT):
        raise GraphProblem(
            400, "InvalidRequest", f"clientState must be a string of at most {CLIENT_STATE_LIMIT} characters."
        )
    the_world = world()
    with the_world.lock:
        mailbox = _subscribed_mailbox(principal, body.get("resource"))
        expires_at = _expiry(body.get("expirationDateTime"))
    for url in filter(None, (notification_url, lifecycle_url)):
        problem = validate_endpoint(url)
        if problem:
            log.info("Validation of %s failed: %s", url, problem)
            raise GraphProblem(
                400,
                "InvalidRequest",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                f"validation request. ({problem})",
            )
    with the_world.lock:
        subscription = Subscription(
            id=str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            client_id=principal.client_id,
            creator=principal.upn,
            mailbox=mailbox.upn,
            resource=body["resource"],
            change_types=change_types,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            client_state=client_state,
            expires_at=expires_at,
            created_at=the_world.now(),
        )
        the_world.subscriptions[subscription.id] = subscription
        return _graph_json(shown(subscription), 201)


@bp.route("/subscriptions", methods=["GET"])
def list_subscriptions():
    principal = authenticate()
    admit(None)
    the_world = world()
    with the_world.lock:
        mine = [shown(s) for s in live_subscriptions(the_world) if _owned_by(s, principal)]
    return _graph_json({"@odata.context": request.url_root + "v1.0/$metadata#subscriptions", "value": mine})


@bp.route("/subscriptions/<subscription_id>", methods=["GET", "PATCH", "DELETE"])
def one_subscription(subscription_id):
    principal = authenticate()
    admit(None)
    the_world = world()
    with the_world.lock:
        subscription = _own_subscription(the_world, principal, subscription_id)
        if request.method == "GET":
            return _graph_json(shown(subscription))
        if request.method == "DELETE":
            del the_world.subscriptions[subscription.id]
            return "", 204
        body = request.get_json(silent=True) or {}
        if "lifecycleNotificationUrl" in body:
            raise GraphProblem(
                400, "InvalidRequest", "lifecycleNotificationUrl can only be set when the subscription is created."
            )
        if "expirationDateTime" in body:
            subscription.expires_at = _expiry(body["expirationDateTime"])
        if body.get("notificationUrl"):
            subscription.notification_url = _url(body["notificationUrl"], "notificationUrl")
        return _graph_json(shown(subscription))


@bp.route("/subscriptions/<subscription_id>/reauthorize", methods=["POST"])
def reauthorize(subscription_id):
    principal = authenticate()
    admit(None)
    the_world = world()
    with the_world.lock:
        _own_subscription(the_world, principal, subscription_id)
    return "", 204


def _own_subscription(the_world, principal, subscription_id):
    subscription = next((s for s in live_subscriptions(the_world) if s.id == subscription_id), None)
    if subscription is None or not _owned_by(subscription, principal):
        raise GraphProblem(404, "ResourceNotFound", NOT_FOUND)
    return subscription


def _owned_by(subscription, principal):
    return subscription.tenant_id == principal.tenant_id and subscription.client_id == principal.client_id


def _change_types(value):
    given = tuple(part.strip() for part in str(value or "").split(",") if part.strip())
    if not given or any(kind not in CHANGE_TYPES for kind in given):
        raise GraphProblem(
            400, "InvalidRequest", "changeType must be a comma-separated list of created, updated, deleted."
        )
    return given


def _url(value, name):
    parts = urlsplit(str(value or ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GraphProblem(400, "InvalidRequest", f"{name} must be an absolute https URL.")
    return str(value)


def _subscribed_mailbox(principal, resource):
    """The mailbox behind `me/events` or `users/{id}/events`, with the usual access rules."""
    path = str(resource or "").strip().strip("/")
    parts = path.split("/")
    if len(parts) == 2 and parts[0].lower() == "me" and parts[1].lower() == "events":
        user = None
    elif len(parts) == 3 and parts[0].lower() == "users" and parts[2].lower() == "events":
        user = parts[1]
    else:
        raise GraphProblem(
            400, "InvalidRequest", f"The stand-in supports only me/events and users/{{id}}/events, not {path!r}."
        )
    mailbox = resolve_mailbox(principal, user)
    check_calendar_access(principal, mailbox)
    return mailbox


def _expiry(value):
    the_world = world()
    try:
        expires_at = zones.parse_instant(str(value))
    except (TypeError, ValueError):
        raise GraphProblem(400, "InvalidRequest", "expirationDateTime must be a date and time in UTC.") from None
    now = the_world.now()
    if expires_at <= now:
        raise GraphProblem(400, "InvalidRequest", "Subscription expiration must be in the future.")
    limit = the_world.settings.max_subscription_minutes
    if expires_at > now + timedelta(minutes=limit):
        raise GraphProblem(400, "ExtensionError", f"Subscription expiration can only be {limit} minutes in the future.")
    return expires_at


def shown(subscription):
    the_world = world()
    mailbox = the_world.mailbox(subscription.mailbox)
    return {
        "@odata.context": request.url_root + "v1.0/$metadata#subscriptions/$entity",
        "id": subscription.id,
        "resource": subscription.resource,
        "applicationId": subscription.client_id,
        "changeType": ",".join(subscription.change_types),
        "clientState": subscription.client_state,
        "notificationUrl": subscription.notification_url,
        "notificationQueryOptions": None,
        "notificationContentType": None,
        "lifecycleNotificationUrl": subscription.lifecycle_url,
        "expirationDateTime": zones.graph_instant(subscription.expires_at),
        "creatorId": mailbox.object_id if subscription.creator else subscription.client_id,
        "includeResourceData": None,
        "latestSupportedTlsVersion": subscription.tls_version,
        "encryptionCertificate": None,
        "encryptionCertificateId": None,
        "notificationUrlAppId": None,
    }


def _graph_json(payload, status=200):
    response = jsonify(payload)
    response.status_code = status
    return response


# -- the handshake -----------------------------------------------------------------------


def validate_endpoint(url):
    """POST the validation token to *url*; None when it answered correctly, else what was wrong."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    separator = "&" if urlsplit(url).query else "?"
    target = f"{url}{separator}{urlencode({'validationToken': token})}"
    try:
        answer = requests.post(
            target, data=b"", headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=VALIDATION_TIMEOUT
        )
    except requests.RequestException as error:
        return f"no answer: {type(error).__name__}"
    if answer.status_code != 200:
        return f"answered {answer.status_code}"
    if not answer.headers.get("Content-Type", "").startswith("text/plain"):
        return f"answered with Content-Type {answer.headers.get('Content-Type')!r}, not text/plain"
    if answer.text != token:
        return "the body is not the decoded validationToken"
    return None


# -- notifications -----------------------------------------------------------------------


def live_subscriptions(the_world):
    """Subscriptions not yet expired; expired ones are deleted on the way, as Graph does."""
    now = the_world.now()
    for subscription_id in [s.id for s in the_world.subscriptions.values() if s.expires_at <= now]:
        del the_world.subscriptions[subscription_id]
    return list(the_world.subscriptions.values())


def notify_change(the_world, mailbox, item_id, change_type):
    """Queue a notification for each live subscription on *mailbox* that wants *change_type*."""
    if the_world.notifier is None:
        return
    if the_world.faults.drops(mailbox.upn):
        the_world.log_delivery(
            {
                "at": the_world.now().isoformat(),
                "kind": "change",
                "mailbox": mailbox.upn,
                "items": [item_id],
                "changeTypes": [change_type],
                "outcome": "dropped",
            }
        )
        return
    for subscription in live_subscriptions(the_world):
        if subscription.mailbox != mailbox.upn or change_type not in subscription.change_types:
            continue
        resource = f"Users/{mailbox.object_id}/Events/{item_id}"
        notification = {
            "id": secrets.token_urlsafe(9),
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": zones.graph_instant(subscription.expires_at),
            "clientState": subscription.client_state,
            "changeType": change_type,
            "resource": resource,
            "tenantId": subscription.tenant_id,
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.Event",
                "@odata.id": resource,
                "@odata.etag": f'W/"{secrets.token_urlsafe(12)}"',
                "id": item_id,
            },
        }
        the_world.notifier.submit(subscription.notification_url, [notification], kind="change")


def send_lifecycle(the_world, subscription, event):
    """Queue a lifecycle notification; `subscriptionRemoved` also deletes the subscription."""
    if event not in LIFECYCLE_EVENTS:
        raise ValueError(f"lifecycle event must be one of {', '.join(LIFECYCLE_EVENTS)}")
    if not subscription.lifecycle_url:
        raise ValueError("this subscription has no lifecycleNotificationUrl")
    notification = {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": zones.graph_instant(subscription.expires_at),
        "tenantId": subscription.tenant_id,
        "clientState": subscription.client_state,
        "lifecycleEvent": event,
    }
    if event == "subscriptionRemoved":
        the_world.subscriptions.pop(subscription.id, None)
    the_world.notifier.submit(subscription.lifecycle_url, [notification], kind="lifecycle")


class Notifier:
    """Delivers notifications from a background thread, with retries, never under the world's lock."""

    def __init__(self, the_world):
        self.world = the_world
        self._condition = threading.Condition()
        self._queue = []
        self._order = itertools.count()
        self._stopped = False
        self._thread = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fakegraph-notify")

    def submit(self, url, items, *, kind, attempt=0, delay=None):
        delay = self.world.settings.notification_delay if delay is None else delay
        due = self.world.now() + timedelta(seconds=delay)
        with self._condition:
            if self._stopped:
                return
            heapq.heappush(self._queue, (due, next(self._order), url, kind, attempt, items))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fakegraph-notifier", daemon=True)
                self._thread.start()
            self._condition.notify()

    def stop(self):
        with self._condition:
            self._stopped = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def idle(self):
        """Whether nothing waits to be delivered (deliveries in flight are not counted)."""
        with self._condition:
            return not self._queue

    def _run(self):
        while True:
            with self._condition:
                while not self._stopped and (not self._queue or self._queue[0][0] > self.world.now()):
                    timeout = (self._queue[0][0] - self.world.now()).total_seconds() if self._queue else None
                    self._condition.wait(timeout=max(timeout, 0.001) if timeout is not None else None)
                if self._stopped:
                    return
                due = []
                while self._queue and self._queue[0][0] <= self.world.now():
                    due.append(heapq.heappop(self._queue))
            # Notifications due together for one URL travel in one POST, as Graph batches them.
            batches = {}
            for _, _, url, kind, attempt, items in due:
                batches.setdefault((url, kind, attempt), []).extend(items)
            for (url, kind, attempt), items in batches.items():
                self._pool.submit(self._deliver, url, kind, attempt, items)

    def _deliver(self, url, kind, attempt, items):
        if kind == "change":
            with self.world.lock:
                live = {s.id for s in live_subscriptions(self.world)}
            items = [item for item in items if item["subscriptionId"] in live]
            if not items:
                return
        try:
            answer = requests.post(url, json={"value": items}, timeout=DELIVERY_TIMEOUT)
            status, reason = answer.status_code, None
        except requests.RequestException as error:
            status, reason = None, type(error).__name__
        delivered = status is not None and 200 <= status < 300
        delays = self.world.settings.notification_retry_delays
        retry = not delivered and attempt < len(delays)
        self.world.log_delivery(
            {
                "at": self.world.now().isoformat(),
                "kind": kind,
                "url": url,
                "attempt": attempt + 1,
                "status": status,
                "error": reason,
                "outcome": "delivered" if delivered else ("retrying" if retry else "given up"),
                "subscriptionIds": sorted({item["subscriptionId"] for item in items}),
                "changeTypes": [item.get("changeType") or item.get("lifecycleEvent") for item in items],
                "items": [item.get("resourceData", {}).get("id") for item in items],
            }
        )
        if retry:
            self.submit(url, items, kind=kind, attempt=attempt + 1, delay=delays[attempt])
