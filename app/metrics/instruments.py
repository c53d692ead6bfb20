"""The counters and histograms the application increments while it works.

Plain `prometheus_client` objects with no Flask dependency, so the Graph client can use
them too. Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py before any
worker imports this module) makes every process write its values to files in that
directory, and `GET /metrics` adds them up; without it they live in this process.
Gauges that describe the database (queue depth, expiries, incidents) are not here: the
collector reads them when Prometheus scrapes.
"""

import time

from prometheus_client import Counter, Histogram

SYNC_ACTIONS = {
    "created": "create",
    "updated": "update",
    "cancelled": "cancel",
    "skipped": "skip",
    "refused": "refuse",
}
THROTTLE_STATUSES = (429, 503, 504)

syncs = Counter("ireserve_syncs", "Inbound syncs of a calendar by result and kind.", ["result", "kind"])
sync_events = Counter(
    "ireserve_sync_events", "Outlook events applied by successful inbound syncs, by decision.", ["action"]
)
webhook_requests = Counter(
    "ireserve_webhook_requests", "Requests to the Graph notification endpoints by answer.", ["endpoint", "status"]
)
notifications_received = Counter(
    "ireserve_webhook_notifications_received", "Notifications in accepted request bodies.", ["endpoint"]
)
notifications_rejected = Counter(
    "ireserve_webhook_notifications_rejected", "Notifications dropped, by reason.", ["endpoint", "reason"]
)
webhook_seconds = Histogram(
    "ireserve_webhook_duration_seconds",
    "Time to answer a request to the notification endpoints (Graph allows three seconds).",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
)
graph_requests = Counter("ireserve_graph_requests", "Answers from Microsoft Graph by HTTP status.", ["status"])
graph_throttled = Counter("ireserve_graph_throttled", "Graph answers that asked us to slow down (429, 503, 504).")
graph_retries = Counter("ireserve_graph_retries", "Graph requests sent again after a wait, by reason.", ["reason"])
alert_notifications = Counter(
    "ireserve_alert_notifications", "Alert notifications delivered or failed, by channel.", ["channel", "result"]
)


def sync_finished(result, kind, summary=None):
    """Count one sync of a calendar (`result` ok or error, `kind` full or incremental)."""
    syncs.labels(result=result, kind=kind).inc()
    if summary is not None:
        for field, action in SYNC_ACTIONS.items():
            number = getattr(summary, field, 0)
            if number:
                sync_events.labels(action=action).inc(number)


def notifications_routed(endpoint, outcome):
    """Count the notifications of one accepted body, and why any were dropped."""
    notifications_received.labels(endpoint=endpoint).inc(outcome.accepted + outcome.rejected)
    for reason in ("unknown_subscription", "wrong_client_state", "malformed"):
        number = getattr(outcome, reason)
        if number:
            notifications_rejected.labels(endpoint=endpoint, reason=reason).inc(number)


def timed_webhook(endpoint, view):
    """Call `view()`, timing it and counting its answer's status code."""
    started = time.perf_counter()
    answer = view()
    webhook_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)
    status = answer[1] if isinstance(answer, tuple) else answer.status_code
    webhook_requests.labels(endpoint=endpoint, status=str(status)).inc()
    return answer


def graph_response(status_code):
    """One answer from Graph arrived."""
    graph_requests.labels(status=str(status_code)).inc()
    if status_code in THROTTLE_STATUSES:
        graph_throttled.inc()


def graph_retry(reason):
    """A Graph request is about to be sent again; `reason` is the status code or the network error."""
    graph_retries.labels(reason=str(reason)).inc()
