"""Subscriptions no calendar knows are deleted: found once a day, and after a create that timed out."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from app.extensions import db
from app.graph import tokens
from app.jobs import queue
from app.models import Job, SyncLogEntry
from app.models.job import JOB_RUNNING
from app.subscriptions import jobs as subscription_jobs
from tests.sync_helpers import GRAPH, graph_client, make_room_link

OURS = "https://portal.test/webhooks/graph"


@pytest.fixture
def graph(app, monkeypatch):
    app.config["PUBLIC_BASE_URL"] = "https://portal.test"
    monkeypatch.setattr(subscription_jobs, "graph_client_for", lambda integration: graph_client(max_attempts=3))
    monkeypatch.setattr(tokens, "graph_client_for", lambda integration: graph_client(max_attempts=3))
    with responses.RequestsMock() as mock:
        yield mock


def listed(subscription_id, url=OURS, resource="users/room-a@contoso.example/events"):
    return {
        "id": subscription_id,
        "notificationUrl": url,
        "resource": resource,
        "expirationDateTime": "2026-11-27T12:00:00Z",
    }


def connected_room_with(world, subscription_id):
    link = make_room_link(world)
    link.subscription_id, link.subscription_client_state = subscription_id, "secret"
    db.session.commit()
    return link


def queued(app):
    with app.app_context():
        return sorted(db.session.execute(db.select(Job.kind, Job.key, Job.state)).all())


def test_the_sweep_deletes_only_subscriptions_of_this_portal_that_no_calendar_knows(app, world, clock, graph, caplog):
    with app.app_context():
        link = connected_room_with(world, "sub-known")
        integration_id = link.integration_id
    graph.get(
        f"{GRAPH}/subscriptions",
        json={
            "value": [listed("sub-known"), listed("sub-orphan-1")],
            "@odata.nextLink": f"{GRAPH}/subscriptions?$skiptoken=2",
        },
    )
    graph.get(
        f"{GRAPH}/subscriptions?$skiptoken=2",
        json={"value": [listed("sub-staging", url="https://staging.test/webhooks/graph"), listed("sub-orphan-2")]},
    )
    graph.delete(f"{GRAPH}/subscriptions/sub-orphan-1", status=204)
    graph.delete(f"{GRAPH}/subscriptions/sub-orphan-2", status=204)
    caplog.set_level(logging.INFO)

    with app.app_context():
        subscription_jobs.run_sweep_subscriptions(str(integration_id), {})

    deleted = [call.request.url for call in graph.calls if call.request.method == "DELETE"]
    assert deleted == [f"{GRAPH}/subscriptions/sub-orphan-1", f"{GRAPH}/subscriptions/sub-orphan-2"]
    with app.app_context():
        lines = db.session.scalars(db.select(SyncLogEntry).order_by(SyncLogEntry.id)).all()
        assert [(line.integration_id, line.action) for line in lines] == [(integration_id, "orphan_deleted")] * 2
        assert "sub-orphan-1" in lines[0].reason and "users/room-a@contoso.example/events" in lines[0].reason
    assert "sub-orphan-2" in caplog.text


def test_the_sweep_waits_while_a_subscription_is_being_created(app, world, clock, graph):
    with app.app_context():
        link = connected_room_with(world, None)
        queue.enqueue(subscription_jobs.SUBSCRIBE_LINK, str(link.id))
        db.session.commit()
        assert queue.claim("busy-worker") is not None  # the create is in flight right now
        integration_id = link.integration_id
    graph.get(f"{GRAPH}/subscriptions", json={"value": [listed("sub-being-created")]})

    with app.app_context(), pytest.raises(subscription_jobs.SubscriptionsBeingCreated) as waiting:
        subscription_jobs.run_sweep_subscriptions(str(integration_id), {})

    assert waiting.value.is_transient  # the queue tries again later
    assert [call.request.method for call in graph.calls] == ["GET"]
    assert (subscription_jobs.SUBSCRIBE_LINK, str(link.id), JOB_RUNNING) in queued(app)


def test_a_create_that_timed_out_is_not_sent_again_blindly_and_queues_a_sweep(app, world, clock, graph):
    with app.app_context():
        link = connected_room_with(world, None)
        link_id, integration_id = link.id, link.integration_id
    graph.post(f"{GRAPH}/subscriptions", body=requests.exceptions.ReadTimeout("no answer in time"))

    with app.app_context(), pytest.raises(Exception, match="ReadTimeout"):
        subscription_jobs.run_subscribe(str(link_id), {})

    # Graph may have created it: one POST only, then a sweep finds and deletes it if so.
    assert [call.request.method for call in graph.calls] == ["POST"]
    sweep_key = f"{integration_id}{subscription_jobs.UNANSWERED_CREATE_KEY_SUFFIX}"
    assert (subscription_jobs.SWEEP_SUBSCRIPTIONS, sweep_key, "queued") in queued(app)

    graph.get(f"{GRAPH}/subscriptions", json={"value": [listed("sub-created-unanswered")]})
    graph.delete(f"{GRAPH}/subscriptions/sub-created-unanswered", status=204)
    with app.app_context():
        subscription_jobs.run_sweep_subscriptions(sweep_key, {})
    assert graph.calls[-1].request.method == "DELETE"


def test_every_connected_integration_with_calendars_is_swept_once_a_day(app, world, clock):
    with app.app_context():
        integration_id = connected_room_with(world, "sub-1").integration_id
        subscription_jobs.queue_subscription_sweeps(clock.now)
        subscription_jobs.queue_subscription_sweeps(clock.now + timedelta(hours=1))
        sweeps = db.session.scalars(db.select(Job).where(Job.kind == subscription_jobs.SWEEP_SUBSCRIPTIONS)).all()
        assert [(job.key, job.run_at) for job in sweeps] == [
            (str(integration_id), datetime(2026, 11, 26, 4, 0, tzinfo=UTC))
        ]
