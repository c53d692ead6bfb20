"""Webhook: change notifications for 500 rooms at 500 per second for 30 seconds, against gunicorn.

The portal runs as the README's "Running at scale" lays out: gunicorn web workers
(default workers and threads) that only answer requests, beside one `flask scheduler run`
process at a lower CPU priority that runs the jobs; every room subscribed and synced
once. A load generator in its own process (`bench.load`) posts one notification per
request, round-robin over the rooms, each carrying the room's real subscription id and
clientState, and measures how long each acknowledgement took.

Nothing lost: the stand-in's own notifications are switched off for the run, and two
thirds of the way through every room gets one more appointment in the stand-in. Only
the load's notifications can bring those in, so when the queue has drained every room
must have that booking. The syncs the portal ran (its `ireserve_syncs_total`) against
the notifications sent shows how much the queue coalesced.
"""

import json
import subprocess
import time

from sqlalchemy import create_engine, text

from bench import harness, live

ROOMS = 500
RATE = 500
SECONDS = 30
P99_TARGET_MS = 25
MARKER = "Marker"


def notification_body(subscription_id, client_state, mailbox, number):
    event_id = f"AAMkAD{number:06d}="
    return json.dumps(
        {
            "value": [
                {
                    "subscriptionId": subscription_id,
                    "clientState": client_state,
                    "changeType": "updated",
                    "resource": f"Users/{mailbox}/Events/{event_id}",
                    "tenantId": harness.TENANT,
                    "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": event_id},
                }
            ]
        }
    )


def start_load(url, bodies, rate=RATE, seconds=SECONDS):
    """The load generator, already running; `finish_load` waits for its result."""
    process = subprocess.Popen(
        [harness.PYTHON, "-m", "bench.load"],
        cwd=harness.ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    process.stdin.write(json.dumps({"url": url, "rate": rate, "seconds": seconds, "bodies": bodies}))
    process.stdin.close()
    return process


def finish_load(process):
    output = process.stdout.read()
    if process.wait() != 0:
        raise RuntimeError("the load generator failed")
    return json.loads(output)


def bodies_for(subscriptions):
    return [
        notification_body(subscription_id, client_state, mailbox, number)
        for number, (mailbox, subscription_id, client_state) in enumerate(subscriptions.values())
    ]


def run(kind):
    with live.live_fleet(kind, ROOMS, runner_process=True) as fleet:
        subscriptions = fleet.subscriptions()
        fleet.stand_in.control("notifications", {"drop": True})
        syncs_before = fleet.portal.metric("ireserve_syncs_total")

        load = start_load(f"{fleet.portal.url}/webhooks/graph", bodies_for(subscriptions))
        time.sleep(SECONDS * 2 / 3)
        for upn in fleet.fleet.upns:
            fleet.stand_in.control(
                f"mailboxes/{upn}/fill", {"count": 1, "minutes": 45, "from_day": 5, "subject": MARKER}
            )
        result = finish_load(load)

        drained_at = time.monotonic()
        harness.wait_for(fleet.idle, timeout=300, interval=0.5, what="the job queue drained")
        drain_seconds = time.monotonic() - drained_at
        syncs = fleet.portal.metric("ireserve_syncs_total") - syncs_before
        failed = fleet.job_counts()["failed"]
        rooms_with_marker = _rooms_with_marker(fleet.settings.database_url)

    latencies = result["latencies_ms"]
    accepted = result["statuses"].get("202", 0)
    errors = result["sent"] - accepted
    p99 = harness.percentile(latencies, 0.99)
    row = _rows(kind)
    return [
        row("notifications sent", result["sent"], "", f"{RATE}/s for {SECONDS} s"),
        row("offered rate achieved", result["sent"] / result["seconds"], "/s"),
        row("ack latency p50", harness.percentile(latencies, 0.50), "ms"),
        row("ack latency p99", p99, "ms", f"<= {P99_TARGET_MS} ms", p99 <= P99_TARGET_MS),
        row("ack latency max", max(latencies, default=0.0), "ms"),
        row("errors (not 202)", errors, "", "0", errors == 0),
        row(
            "rooms synced after their last notification",
            rooms_with_marker,
            f"of {ROOMS}",
            "all",
            rooms_with_marker == ROOMS,
        ),
        row("syncs run for the notifications", int(syncs), f"for {result['sent']:,}"),
        row("jobs parked as failed", failed, "", "0", failed == 0),
        row("queue drained after the load in", drain_seconds, "s"),
    ]


def _rows(kind):
    def row(measure, value, unit="", target="", met=None):
        return harness.Row("webhook", kind, measure, value, unit, target, met)

    return row


def _rooms_with_marker(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(
                text("SELECT count(DISTINCT object_id) FROM bookings WHERE remark = :subject"),
                {"subject": f"{MARKER} 1"},
            )
    finally:
        engine.dispose()
