"""GET /metrics: Prometheus text that moves with the work, served only to those allowed."""

import json
import math
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.alerts import incidents
from app.database import server_time
from app.extensions import db
from app.graph.errors import GraphForbidden
from app.jobs import queue
from app.models.integration import CONNECTION_NEEDS_RECONNECT
from app.scheduler import lease
from app.sync.engine import sync_link
from tests.conftest import config_for
from tests.sync_helpers import GRAPH, at, delta_url, event, graph_client, make_room_link, page

ROOM = "room-a@contoso.example"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}


def scrape(client, **options):
    response = client.get("/metrics", **options)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# -- access ----------------------------------------------------------------------------


def test_localhost_may_scrape_without_a_token(client):
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::ffff:127.0.0.1"}).status_code == 200


def test_other_addresses_are_refused_without_a_token(client):
    response = client.get("/metrics", environ_base=OUTSIDE)
    assert response.status_code == 403
    assert "ireserve_" not in response.get_data(as_text=True)


def test_a_token_opens_metrics_to_any_address(app, client):
    app.config["METRICS_TOKEN"] = "scrape-token-0123456789"
    assert (
        client.get(
            "/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer scrape-token-0123456789"}
        ).status_code
        == 200
    )

    missing = client.get("/metrics", environ_base=OUTSIDE)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer nope"}).status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401, "a wrong token is refused even from an allowed address"


def test_a_token_in_the_query_string_is_not_accepted(app, client):
    """Access logs keep query strings: a scrape token there would be written down in the clear."""
    app.config["METRICS_TOKEN"] = "scrape-token-0123456789"
    refused = client.get("/metrics?token=scrape-token-0123456789", environ_base=OUTSIDE)
    assert refused.status_code == 401
    assert "ireserve_" not in refused.get_data(as_text=True)


def test_allowed_networks_are_configurable(app, client):
    app.config["METRICS_ALLOW"] = "10.0.0.0/8, 192.0.2.7"
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.30.40"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200
    assert client.get("/metrics").status_code == 403, "127.0.0.1 is no longer in the list"
    app.config["METRICS_ALLOW"] = ""
    assert client.get("/metrics").status_code == 403


def test_a_bad_network_list_stops_the_start(database_url, tmp_path):
    with pytest.raises(ValueError, match="METRICS_ALLOW"):
        create_app(config_for(database_url, METRICS_ALLOW="10.0.0.0/33"), instance_path=str(tmp_path))


# -- what moves ------------------------------------------------------------------------


def test_a_sync_moves_the_sync_event_and_graph_counters(app, client, world, clock):
    with app.app_context():
        link_id = make_room_link(world).id
    before = scrape(client)
    with responses.RequestsMock() as mock:
        mock.get(
            delta_url(ROOM),
            json=page(
                [event("ev-1", at(1, 9), at(1, 10)), event("ev-2", at(2, 9), at(2, 10))],
                delta_link=f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=1",
            ),
        )
        with app.app_context():
            sync_link(link_id, client=graph_client(max_attempts=1))
    after = scrape(client)

    assert (
        value(after, "ireserve_syncs_total", result="ok", kind="full")
        == value(before, "ireserve_syncs_total", result="ok", kind="full") + 1
    )
    assert (
        value(after, "ireserve_sync_events_total", action="create")
        == value(before, "ireserve_sync_events_total", action="create") + 2
    )
    assert (
        value(after, "ireserve_graph_requests_total", status="200")
        == value(before, "ireserve_graph_requests_total", status="200") + 1
    )

    with responses.RequestsMock() as mock:
        mock.get(
            f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=1",
            status=403,
            json={"error": {"code": "ErrorAccessDenied"}},
        )
        with app.app_context(), pytest.raises(GraphForbidden):
            sync_link(link_id, client=graph_client(max_attempts=1))
    failed = scrape(client)
    assert (
        value(failed, "ireserve_syncs_total", result="error", kind="incremental")
        == value(after, "ireserve_syncs_total", result="error", kind="incremental") + 1
    )
    assert value(failed, "ireserve_calendar_links_failing") == 1


def test_throttling_and_retries_are_counted(app, client):
    before = scrape(client)
    with responses.RequestsMock() as mock:
        mock.get(f"{GRAPH}/me", status=429, headers={"Retry-After": "1"}, json={"error": {"code": "TooManyRequests"}})
        mock.get(f"{GRAPH}/me", json={"id": "me"})
        graph_client(max_attempts=3).get("me")
    after = scrape(client)
    assert value(after, "ireserve_graph_throttled_total") == value(before, "ireserve_graph_throttled_total") + 1
    assert (
        value(after, "ireserve_graph_retries_total", reason="429")
        == value(before, "ireserve_graph_retries_total", reason="429") + 1
    )


def test_webhook_requests_notifications_and_their_timing_are_counted(app, client, world):
    with app.app_context():
        link = make_room_link(world)
        link.subscription_id, link.subscription_client_state = "sub-a", "client-state-0123456789"
        db.session.commit()
    before = scrape(client)
    items = [
        {"subscriptionId": "sub-a", "clientState": "client-state-0123456789"},
        {"subscriptionId": "sub-unknown", "clientState": "x"},
    ]
    client.post("/webhooks/graph", data=json.dumps({"value": items}), content_type="application/json")
    client.post("/webhooks/graph", data="not json", content_type="application/json")
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("ireserve_webhook_requests_total", endpoint="change", status="202") == 1
    assert moved("ireserve_webhook_requests_total", endpoint="change", status="400") == 1
    assert moved("ireserve_webhook_notifications_received_total", endpoint="change") == 2
    assert moved("ireserve_webhook_notifications_rejected_total", endpoint="change", reason="unknown_subscription") == 1
    assert moved("ireserve_webhook_duration_seconds_count", endpoint="change") == 2


def test_database_gauges_are_read_at_scrape_time(app, client, world, clock):
    samples = scrape(client)
    assert value(samples, "ireserve_database_up") == 1
    assert value(samples, "ireserve_jobs", state="due") == 0
    assert math.isinf(value(samples, "ireserve_scheduler_heartbeat_age_seconds"))
    assert value(samples, "ireserve_incidents_open", kind="needs_reconnect", severity="critical") == 0

    with app.app_context():
        link = make_room_link(world)
        link.subscription_id, link.subscription_expires_at = "sub-a", clock.now + timedelta(days=2)
        link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
        queue.enqueue("some_kind", "1", run_at=clock.now - timedelta(minutes=3))
        db.session.commit()
        incidents.evaluate(clock.now)
        lease.acquire("host:1:abc", now=server_time.database_now() - timedelta(seconds=30))
    samples = scrape(client)

    assert value(samples, "ireserve_jobs", state="due") == 1
    assert value(samples, "ireserve_jobs_oldest_due_age_seconds") == 180
    assert value(samples, "ireserve_integrations", state="needs_reconnect") == 1
    assert value(samples, "ireserve_incidents_open", kind="needs_reconnect", severity="critical") == 1
    assert 29 <= value(samples, "ireserve_scheduler_heartbeat_age_seconds") < 120
    assert value(samples, "ireserve_scheduler_lease_held") == 1

    with app.app_context():
        link = db.session.merge(link)
        link.integration.connection_state = "connected"
        db.session.commit()
    samples = scrape(client)
    assert value(samples, "ireserve_subscription_earliest_expiry_seconds") == timedelta(days=2).total_seconds()


def test_counters_of_all_gunicorn_workers_are_added_up(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py does it), two processes report one sum."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    database = tmp_path / "multi.db"
    count_one = textwrap.dedent(
        """
        from app.metrics import instruments
        instruments.sync_finished("ok", "full")
        """
    )
    scrape_script = textwrap.dedent(
        f"""
        from app import create_app
        from app.extensions import db
        from app.metrics import instruments
        from tests.conftest import config_for
        app = create_app(config_for("sqlite:///{database}"), instance_path="{tmp_path}")
        with app.app_context():
            db.create_all()
        instruments.sync_finished("ok", "full")
        print(app.test_client().get("/metrics").get_data(as_text=True))
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", count_one], env=env, cwd=cwd, check=True)
    output = subprocess.run(
        [sys.executable, "-c", scrape_script], env=env, cwd=cwd, check=True, capture_output=True, text=True
    ).stdout
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(output)
        for s in family.samples
    }
    assert samples[("ireserve_syncs_total", (("kind", "full"), ("result", "ok")))] == 2
    assert samples[("ireserve_database_up", ())] == 1
    assert list(metrics_dir.glob("counter_*.db"))
