"""The notification endpoint: answers fast, routes by subscription, trusts only the right clientState."""

import json
from datetime import timedelta

import pytest

from app.extensions import db
from app.jobs import queue
from app.models import CalendarLink
from app.models.job import Job
from tests.sync_helpers import make_room_link

SECRET_A = "client-state-of-room-a-0123456789"
SECRET_B = "client-state-of-room-b-9876543210"


@pytest.fixture
def rooms(app, world):
    with app.app_context():
        a = make_room_link(world, upn="a@contoso.example")
        b = CalendarLink(integration_id=a.integration_id, mailbox="b@contoso.example", object_id=world.a.object)
        db.session.add(b)
        a.subscription_id, a.subscription_client_state = "sub-a", SECRET_A
        b.subscription_id, b.subscription_client_state = "sub-b", SECRET_B
        db.session.commit()
        return {"a": a.id, "b": b.id}


def notification(subscription_id, client_state, change="updated", **extra):
    return {
        "subscriptionId": subscription_id,
        "clientState": client_state,
        "changeType": change,
        "resource": "Users/x/Events/y",
        "resourceData": {"id": "y"},
        **extra,
    }


def post(client, items, path="/webhooks/graph"):
    return client.post(path, data=json.dumps({"value": items}), content_type="application/json")


def queued_syncs(app):
    with app.app_context():
        rows = db.session.scalars(db.select(Job).where(Job.state == "queued").order_by(Job.id)).all()
        return [(job.kind, job.key) for job in rows]


@pytest.mark.parametrize("path", ["/webhooks/graph", "/webhooks/graph/lifecycle"])
def test_the_validation_handshake_echoes_the_decoded_token_as_plain_text(client, path):
    response = client.post(
        f"{path}?validationToken=Validation%3a+Testing+client+application+reachability+for+subscription+Request-Id%3a+abc",
        data="",
        content_type="text/plain; charset=utf-8",
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert (
        response.get_data(as_text=True)
        == "Validation: Testing client application reachability for subscription Request-Id: abc"
    )


def test_each_notification_queues_a_sync_of_its_own_room(app, client, rooms):
    response = post(client, [notification("sub-b", SECRET_B), notification("sub-a", SECRET_A)])
    assert response.status_code == 202
    assert response.json["accepted"] == 2
    assert sorted(queued_syncs(app)) == [("sync_link", str(rooms["a"])), ("sync_link", str(rooms["b"]))]


def test_a_burst_for_one_room_queues_one_sync(app, client, rooms):
    for _ in range(20):
        post(client, [notification("sub-a", SECRET_A)] * 50)
    assert queued_syncs(app) == [("sync_link", str(rooms["a"]))]


def test_wrong_client_state_and_unknown_subscriptions_are_dropped_without_spoiling_the_batch(app, client, rooms):
    response = post(
        client,
        [
            notification("sub-a", SECRET_B),  # another room's secret
            notification("sub-unknown", SECRET_A),
            notification("sub-b", SECRET_B),
            {"no": "subscription"},
            "not an object",
        ],
    )
    assert response.status_code == 202
    assert response.json == {
        "accepted": 1,
        "rejected": 4,
        "unknown_subscription": 1,
        "wrong_client_state": 1,
        "malformed": 2,
    }
    assert queued_syncs(app) == [("sync_link", str(rooms["b"]))]


def test_a_disabled_room_is_not_synced(app, client, rooms):
    with app.app_context():
        db.session.get(CalendarLink, rooms["a"]).enabled = False
        db.session.commit()
    assert post(client, [notification("sub-a", SECRET_A)]).status_code == 202
    assert queued_syncs(app) == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        ("{not json", "application/json", 400, "not valid JSON"),
        ('{"value": 3}', "application/json", 400, "no 'value' list"),
        ("[]", "application/json", 400, "no 'value' list"),
        ('{"value": []}', "text/plain", 415, "application/json"),
        (b"\xff\xfe", "application/json", 400, "not valid JSON"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_reason(client, rooms, body, content_type, status, reason):
    response = client.post("/webhooks/graph", data=body, content_type=content_type)
    assert response.status_code == status
    assert reason in response.json["error"]


def test_an_oversized_body_is_refused(app, client, rooms):
    app.config["WEBHOOK_MAX_BYTES"] = 1000
    response = post(client, [notification("sub-a", SECRET_A, padding="x" * 2000)])
    assert response.status_code == 413
    assert queued_syncs(app) == []


def test_no_graph_call_happens_inside_the_request(client, rooms):
    import responses

    with responses.RequestsMock() as mock:  # any HTTP call would fail as unregistered
        assert post(client, [notification("sub-a", SECRET_A)]).status_code == 202
        assert len(mock.calls) == 0


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("missed", [("sync_link", "{a}")]),
        ("reauthorizationRequired", [("renew_subscription", "{a}")]),
        ("subscriptionRemoved", [("recreate_subscription", "{a}"), ("sync_link", "{a}")]),
    ],
)
def test_lifecycle_events_queue_what_they_ask_for(app, client, rooms, event, expected):
    item = notification("sub-a", SECRET_A, lifecycleEvent=event)
    assert post(client, [item], path="/webhooks/graph/lifecycle").status_code == 202
    assert queued_syncs(app) == [(kind, key.format(a=rooms["a"])) for kind, key in expected]


def test_lifecycle_events_with_a_wrong_client_state_are_ignored(app, client, rooms):
    item = notification("sub-a", "forged", lifecycleEvent="subscriptionRemoved")
    assert post(client, [item], path="/webhooks/graph/lifecycle").json["wrong_client_state"] == 1
    assert queued_syncs(app) == []


def test_a_notification_during_a_running_sync_queues_one_more(app, client, rooms):
    post(client, [notification("sub-a", SECRET_A)])
    with app.app_context():
        running = queue.claim("worker-1")
        assert running.key == str(rooms["a"])
    for _ in range(5):
        post(client, [notification("sub-a", SECRET_A)])
    # The running sync may have read the calendar before these changes: one more follows it.
    assert queued_syncs(app) == [("sync_link", str(rooms["a"]))]
    with app.app_context():
        assert queue.state_counts()["running"] == 1


def test_the_last_notification_time_is_kept_to_the_minute_without_a_write_per_notification(
    app, client, rooms, clock
):
    def notified_at():
        with app.app_context():
            return db.session.get(CalendarLink, rooms["a"]).last_notification_at

    post(client, [notification("sub-a", SECRET_A)])
    first = clock.now
    assert notified_at() == first
    clock.advance(timedelta(seconds=30))
    post(client, [notification("sub-a", SECRET_A)])
    assert notified_at() == first
    clock.advance(timedelta(seconds=31))
    post(client, [notification("sub-a", SECRET_A)])
    assert notified_at() == clock.now
