"""Graph notifies a new subscription as soon as it has validated it, before the create call
returns, so those first notifications name an id the portal has not stored yet. A sync
queued once the id is stored catches what they announced, and what changed between a
calendar's first sync and its subscription."""

import json

import pytest
import responses

from app.extensions import db
from app.graph import tokens
from app.jobs import handlers, queue
from app.models import Booking, CalendarLink
from app.subscriptions import jobs as subscription_jobs
from tests.sync_helpers import GRAPH, at, delta_url, event, graph_client, make_room_link, page

ROOM = "room-a@contoso.example"
ROUND_1 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-1"
ROUND_2 = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=round-2"


@pytest.fixture
def graph(monkeypatch):
    monkeypatch.setattr(subscription_jobs, "graph_client_for", lambda integration: graph_client(max_attempts=1))
    monkeypatch.setattr(tokens, "graph_client_for", lambda integration: graph_client(max_attempts=1))
    with responses.RequestsMock() as mock:
        yield mock


def run_queued(app, kind):
    """Run every queued job of `kind` as a job thread would; return their keys."""
    ran = []
    with app.app_context():
        while (job := queue.claim("test", kinds=[kind])) is not None:
            handlers.handler_for(job.kind)(job.key, job.payload)
            queue.complete(job)
            ran.append(job.key)
    return ran


def queued_syncs(app):
    with app.app_context():
        return [
            key for kind, key in db.session.execute(db.select(queue.Job.kind, queue.Job.key)) if kind == "sync_link"
        ]


def graph_notifies_while_creating(graph, portal, subscription_id):
    """Graph's POST /subscriptions: a change is notified before the create is answered."""
    early = []

    def create(request):
        body = json.loads(request.body)
        notification = {
            "subscriptionId": subscription_id,
            "clientState": body["clientState"],
            "changeType": "created",
            "resource": body["resource"],
        }
        early.append(portal.post("/webhooks/graph", json={"value": [notification]}).get_json())
        return 201, {}, json.dumps({"id": subscription_id, "expirationDateTime": "2026-11-28T12:00:00Z"})

    graph.add_callback(responses.POST, f"{GRAPH}/subscriptions", callback=create, content_type="application/json")
    return early


def first_sync_finds_an_empty_room(app, graph):
    graph.get(delta_url(ROOM), json=page([], delta_link=ROUND_1))
    assert run_queued(app, "sync_link")


def the_change_is_booked_by_the_sync_after_the_subscription(app, graph, link_id, early):
    # Graph's first notification named an id not stored yet: the webhook could not route it.
    assert [answer["unknown_subscription"] for answer in early] == [1]
    assert queued_syncs(app) == [str(link_id)]
    graph.get(
        ROUND_1, json=page([event("ev-early", at(9, 9), at(9, 10), subject="Booked meanwhile")], delta_link=ROUND_2)
    )
    run_queued(app, "sync_link")
    with app.app_context():
        assert [b.extra["outlook_event_id"] for b in db.session.scalars(db.select(Booking))] == ["ev-early"]


def test_a_room_added_gets_what_changed_before_its_subscription_existed(app, login, world, clock, graph):
    with app.app_context():
        integration_id = make_room_link(world, upn="first@contoso.example").integration_id
    portal = login(world.a.admin)
    portal.post(
        f"/orgs/{world.a.org}/integrations/{integration_id}/rooms", data={"upn": ROOM, "object_id": world.a.object}
    )
    with app.app_context():
        link_id = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.mailbox == ROOM))
    first_sync_finds_an_empty_room(app, graph)

    early = graph_notifies_while_creating(graph, portal, "sub-new")
    assert run_queued(app, "subscribe_link") == [str(link_id)]

    the_change_is_booked_by_the_sync_after_the_subscription(app, graph, link_id, early)


def test_a_subscription_recreated_after_subscription_removed_gets_what_changed_meanwhile(
    app, client, world, clock, graph
):
    with app.app_context():
        link = make_room_link(world)
        link.subscription_id, link.subscription_client_state = "sub-old", "old-secret"
        db.session.commit()
        link_id = link.id
    removed = {"subscriptionId": "sub-old", "clientState": "old-secret", "lifecycleEvent": "subscriptionRemoved"}
    assert client.post("/webhooks/graph/lifecycle", json={"value": [removed]}).status_code == 202
    first_sync_finds_an_empty_room(app, graph)

    graph.delete(f"{GRAPH}/subscriptions/sub-old", status=404, json={"error": {"code": "ResourceNotFound"}})
    early = graph_notifies_while_creating(graph, client, "sub-recreated")
    assert run_queued(app, "recreate_subscription") == [str(link_id)]

    the_change_is_booked_by_the_sync_after_the_subscription(app, graph, link_id, early)


def test_a_calendar_connected_gets_what_changed_before_its_subscription_existed(app, login, world, clock, graph):
    from tests.test_oauth_delegated import CALLBACK, add_integration, register_code_exchange, start_connect

    with app.app_context():
        integration_id = add_integration(world, new_booking_status_id=world.a.statuses["Option"])
    portal = login(world.a.admin)
    state = start_connect(portal, world, integration_id)["state"]
    register_code_exchange(graph)
    assert portal.get(CALLBACK, query_string={"code": "code-1", "state": state}).status_code == 302
    with app.app_context():
        link_id = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.integration_id == integration_id))
    own_round_1 = f"{GRAPH}/me/calendarView/delta?$deltatoken=round-1"
    graph.get(f"{GRAPH}/me/calendarView/delta", json=page([], delta_link=own_round_1))
    assert run_queued(app, "sync_link") == [str(link_id)]

    early = graph_notifies_while_creating(graph, portal, "sub-own")
    assert run_queued(app, "subscribe_link") == [str(link_id)]

    assert [answer["unknown_subscription"] for answer in early] == [1]
    assert queued_syncs(app) == [str(link_id)]
    appointment = event("ev-early", at(9, 9), at(9, 10), subject="Booked meanwhile")
    graph.get(own_round_1, json=page([appointment], delta_link=f"{GRAPH}/me/calendarView/delta?$deltatoken=round-2"))
    run_queued(app, "sync_link")
    with app.app_context():
        assert [b.extra["outlook_event_id"] for b in db.session.scalars(db.select(Booking))] == ["ev-early"]
