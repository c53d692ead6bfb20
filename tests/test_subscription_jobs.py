"""Subscriptions follow the calendars: queued when one becomes active, renewed on schedule, deleted when it goes."""

import json
from datetime import timedelta

import pytest
import responses

from app.extensions import db
from app.graph import tokens
from app.models import CalendarLink
from app.models.job import Job
from app.subscriptions import jobs as subscription_jobs
from tests.sync_helpers import GRAPH, graph_client, make_room_link


@pytest.fixture
def graph(monkeypatch):
    """Every integration talks to the faked Graph with a fixed token."""
    monkeypatch.setattr(subscription_jobs, "graph_client_for", lambda integration: graph_client(max_attempts=1))
    monkeypatch.setattr(tokens, "graph_client_for", lambda integration: graph_client(max_attempts=1))
    with responses.RequestsMock() as mock:
        yield mock


def jobs(app):
    with app.app_context():
        return sorted(db.session.execute(db.select(Job.kind, Job.key, Job.state)).all())


def test_adding_a_room_queues_its_subscription_and_first_sync(app, login, world):
    with app.app_context():
        integration_id = make_room_link(world, upn="first@contoso.example").integration_id
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/integrations/{integration_id}/rooms",
        data={"upn": "Hall@Contoso.example", "object_id": world.a.object},
    )
    assert response.status_code == 302
    with app.app_context():
        link_id = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.mailbox == "hall@contoso.example"))
    assert jobs(app) == [("subscribe_link", str(link_id), "queued"), ("sync_link", str(link_id), "queued")]


def test_removing_a_room_queues_the_deletion_of_its_subscription(app, login, world, graph):
    with app.app_context():
        link = make_room_link(world, upn="gone@contoso.example")
        link.subscription_id, link.subscription_client_state = "sub-gone", "s"
        db.session.commit()
        link_id, integration_id = link.id, link.integration_id
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/integrations/{integration_id}/rooms/{link_id}/remove")
    assert jobs(app) == [("delete_subscription", "sub-gone", "queued")]

    graph.delete(f"{GRAPH}/subscriptions/sub-gone", status=204)
    with app.app_context():
        subscription_jobs.run_delete("sub-gone", {"integration_id": integration_id})
    assert len(graph.calls) == 1


def test_the_subscribe_job_stores_the_subscription(app, world, clock, graph):
    with app.app_context():
        link_id = make_room_link(world).id
    graph.post(f"{GRAPH}/subscriptions", status=201, json={"id": "sub-1", "expirationDateTime": "2026-11-28T12:00:00Z"})
    with app.app_context():
        subscription_jobs.run_subscribe(str(link_id), {})
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        assert (link.subscription_id, link.subscription_error) == ("sub-1", None)


def test_a_failed_subscription_is_shown_on_the_link_and_raised_for_retry(app, world, clock, graph):
    with app.app_context():
        link_id = make_room_link(world).id
    graph.post(
        f"{GRAPH}/subscriptions",
        status=400,
        json={"error": {"code": "InvalidRequest", "message": "Subscription validation request failed."}},
    )
    with app.app_context(), pytest.raises(Exception, match="validation request failed"):
        subscription_jobs.run_subscribe(str(link_id), {})
    with app.app_context():
        assert "validation request failed" in db.session.get(CalendarLink, link_id).subscription_error


def test_a_disabled_link_gets_no_subscription(app, world, graph):
    with app.app_context():
        link = make_room_link(world)
        link.enabled = False
        db.session.commit()
        subscription_jobs.run_subscribe(str(link.id), {})
    assert len(graph.calls) == 0


def test_periodic_renewal_batches_and_requeues_forgotten_subscriptions(app, world, clock, graph):
    with app.app_context():
        first = make_room_link(world, upn="r0@contoso.example")
        links = [first] + [
            CalendarLink(integration_id=first.integration_id, mailbox=f"r{n}@contoso.example", object_id=world.a.object)
            for n in range(1, 30)
        ]
        db.session.add_all(links)
        for n, link in enumerate(links):
            link.subscription_id = f"sub-{n}"
            link.subscription_expires_at = clock.now + (timedelta(hours=5) if n < 25 else timedelta(days=2, hours=1))
        db.session.commit()
        forgotten_id = links[0].id

    def answer(request):
        items = json.loads(request.body)["requests"]
        replies = [
            {"id": i["id"], "status": 404 if i["url"] == "/subscriptions/sub-0" else 200, "body": {}} for i in items
        ]
        return 200, {}, json.dumps({"responses": replies})

    graph.add_callback(responses.POST, f"{GRAPH}/$batch", callback=answer, content_type="application/json")
    with app.app_context():
        assert subscription_jobs.renew_subscriptions(clock.now) == 25
    # The scheduler's periodic run only queues; the renewal job does the Graph work.
    assert len(graph.calls) == 0
    assert jobs(app) == [("renew_integration_subscriptions", str(first.integration_id), "queued")]
    with app.app_context():
        subscription_jobs.run_renew_integration(str(first.integration_id), {})
        db.session.execute(db.delete(Job).where(Job.kind == "renew_integration_subscriptions"))
        db.session.commit()
    assert len(graph.calls) == 2  # 25 renewals in two requests
    assert jobs(app) == [("recreate_subscription", str(forgotten_id), "queued")]
    with app.app_context():
        renewed = db.session.scalar(db.select(CalendarLink).where(CalendarLink.mailbox == "r7@contoso.example"))
        assert renewed.subscription_expires_at == clock.now + timedelta(days=3)


def test_missing_subscriptions_are_queued_for_active_links_only(app, world, clock):
    with app.app_context():
        live = make_room_link(world, upn="live@contoso.example")
        live.subscription_id, live.subscription_expires_at = "sub-live", clock.now + timedelta(days=2)
        bare = CalendarLink(
            integration_id=live.integration_id, mailbox="bare@contoso.example", object_id=world.a.object
        )
        off = CalendarLink(
            integration_id=live.integration_id, mailbox="off@contoso.example", object_id=world.a.object, enabled=False
        )
        db.session.add_all([bare, off])
        db.session.commit()
        assert subscription_jobs.create_missing_subscriptions(clock.now) == [bare.id]
        assert jobs(app) == [("subscribe_link", str(bare.id), "queued")]
