"""The notification endpoint: answers fast, routes by subscription, trusts only the right clientState."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import event

from app import create_app
from app.extensions import db
from app.jobs import queue
from app.models import CalendarLink
from app.models.job import Job
from app.subscriptions import routing
from app.webhook.warm_up import warm_up
from tests.conftest import config_for
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


ENDPOINTS = ["/webhooks/graph", "/webhooks/graph/lifecycle"]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_a_body_nested_too_deeply_is_refused_with_a_reason(app, client, rooms, path, depth):
    body = '{"value": [' + "[" * depth + "]" * depth + "]}"
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json["error"]
    assert queued_syncs(app) == []


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_lone_surrogate_in_a_subscription_id_is_malformed_and_the_rest_still_routes(app, client, rooms, path):
    # json.dumps writes the escape "\ud800", which json.loads turns back into a lone surrogate.
    items = [notification("\ud800", SECRET_A, lifecycleEvent="missed"), notification("sub-b", SECRET_B)]
    response = post(client, items, path=path)
    assert response.status_code == 202
    assert (response.json["malformed"], response.json["accepted"]) == (1, 1)
    expected = [("sync_link", str(rooms["b"]))] if path.endswith("graph") else []
    assert queued_syncs(app) == expected


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_lone_surrogate_in_a_client_state_is_malformed_and_the_rest_still_routes(app, client, rooms, path):
    items = [notification("sub-a", "\udfff", lifecycleEvent="missed"), notification("sub-b", SECRET_B)]
    response = post(client, items, path=path)
    assert response.status_code == 202
    assert (response.json["malformed"], response.json["accepted"]) == (1, 1)
    expected = [("sync_link", str(rooms["b"]))] if path.endswith("graph") else []
    assert queued_syncs(app) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"subscriptionId": 12345},
        {"subscriptionId": ["sub-a"]},
        {"subscriptionId": {"id": "sub-a"}},
        {"subscriptionId": True},
        {"subscriptionId": "sub-a" + "x" * 10_000},
        {"subscriptionId": "sub-a\x00"},  # PostgreSQL cannot hold a NUL character
        {"clientState": 12345},
        {"clientState": [SECRET_A]},
        {"clientState": SECRET_A + "x" * 10_000},
        {"lifecycleEvent": ["missed"]},
        {"lifecycleEvent": "missed\udc80"},
    ],
    ids=lambda fields: ",".join(fields),
)
@pytest.mark.parametrize("path", ENDPOINTS)
def test_an_item_with_a_field_that_cannot_be_handled_is_malformed_and_changes_nothing(app, client, rooms, path, fields):
    bad = {**notification("sub-a", SECRET_A, lifecycleEvent="missed"), **fields}
    response = post(client, [bad, notification("sub-b", SECRET_B, lifecycleEvent="missed")], path=path)
    assert response.status_code == 202
    assert response.json == {
        "accepted": 1,
        "rejected": 1,
        "unknown_subscription": 0,
        "wrong_client_state": 0,
        "malformed": 1,
    }
    assert queued_syncs(app) == [("sync_link", str(rooms["b"]))]
    with app.app_context():
        assert db.session.get(CalendarLink, rooms["a"]).last_notification_at is None


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_validation_token_that_is_not_utf8_gets_a_4xx_with_a_reason(client, path):
    # A raw 0xFF byte in the request line, as a WSGI server hands it over (one character per byte).
    response = client.post(path, environ_overrides={"QUERY_STRING": "validationToken=\xff"})
    assert response.status_code == 400
    assert "UTF-8" in response.json["error"]


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


def test_the_last_notification_time_is_kept_to_the_minute_without_a_write_per_notification(app, client, rooms, clock):
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


# -- routes remembered per process ------------------------------------------------------


class FakeMonotonic:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def monotonic(app):
    """The webhook's route memory of this app, on a clock the test moves."""
    fake = FakeMonotonic()
    app.extensions[routing.EXTENSION] = routing.SubscriptionRoutes(monotonic=fake)
    return fake


@pytest.fixture
def link_reads(app):
    """How many statements have read calendar links since the test began."""
    reads = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM calendar_links" in statement:
            reads.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    yield reads
    event.remove(engine, "before_cursor_execute", count)


def change_link_elsewhere(app, link_id, **values):
    """Change a link as another portal process would: in SQL, unseen by this process's session."""
    with app.app_context():
        db.session.execute(db.update(CalendarLink).where(CalendarLink.id == link_id).values(**values))
        db.session.commit()


def drop_queued_jobs(app):
    with app.app_context():
        db.session.execute(db.delete(Job))
        db.session.commit()


def test_a_room_s_later_notifications_are_routed_without_reading_its_link(app, client, rooms, link_reads):
    post(client, [notification("sub-a", SECRET_A)])
    first = len(link_reads)
    for _ in range(3):
        assert post(client, [notification("sub-a", SECRET_A)]).json["accepted"] == 1
    assert first == 1
    assert len(link_reads) == first


def test_a_room_disabled_in_this_process_stops_queuing_syncs_at_once(app, client, rooms):
    post(client, [notification("sub-a", SECRET_A)])
    drop_queued_jobs(app)
    with app.app_context():
        db.session.get(CalendarLink, rooms["a"]).enabled = False
        db.session.commit()
    assert post(client, [notification("sub-a", SECRET_A)]).json["accepted"] == 1
    assert queued_syncs(app) == []


def test_a_subscription_replaced_in_this_process_is_routed_at_once(app, client, rooms):
    post(client, [notification("sub-a", SECRET_A)])
    with app.app_context():
        link = db.session.get(CalendarLink, rooms["a"])
        link.subscription_id, link.subscription_client_state = "sub-a2", "a-new-client-state-of-room-a-0001"
        db.session.commit()
    assert post(client, [notification("sub-a", SECRET_A)]).json["unknown_subscription"] == 1
    assert post(client, [notification("sub-a2", "a-new-client-state-of-room-a-0001")]).json["accepted"] == 1


def test_a_rolled_back_change_keeps_the_routes(app, client, rooms, link_reads):
    post(client, [notification("sub-a", SECRET_A)])
    with app.app_context():
        db.session.get(CalendarLink, rooms["a"]).enabled = False
        db.session.flush()
        db.session.rollback()
    reads = len(link_reads)
    post(client, [notification("sub-a", SECRET_A)])
    assert len(link_reads) == reads
    assert queued_syncs(app) == [("sync_link", str(rooms["a"]))]


def test_a_route_read_while_the_link_changed_here_is_read_again(app, client, rooms, monotonic, monkeypatch):
    read_routes = routing._read_routes

    def read_then_see_a_commit_land(condition):
        found = read_routes(condition)
        # Another thread of this process commits a change to the link meanwhile.
        routing.routes().forget_all()
        return found

    monkeypatch.setattr(routing, "_read_routes", read_then_see_a_commit_land)
    post(client, [notification("sub-a", SECRET_A)])
    monkeypatch.setattr(routing, "_read_routes", read_routes)
    drop_queued_jobs(app)
    change_link_elsewhere(app, rooms["a"], enabled=False)
    post(client, [notification("sub-a", SECRET_A)])
    assert queued_syncs(app) == []


def test_a_change_made_by_another_process_is_seen_once_the_route_expires(app, client, rooms, monotonic):
    post(client, [notification("sub-a", SECRET_A)])
    drop_queued_jobs(app)
    change_link_elsewhere(app, rooms["a"], enabled=False)

    monotonic.now += routing.ROUTE_SECONDS / 2
    post(client, [notification("sub-a", SECRET_A)])
    # Still remembered as enabled: the sync is queued, and skips the room when it runs.
    assert queued_syncs(app) == [("sync_link", str(rooms["a"]))]
    drop_queued_jobs(app)

    monotonic.now += routing.ROUTE_SECONDS * (1 + routing.ROUTE_JITTER)
    assert post(client, [notification("sub-a", SECRET_A)]).json["accepted"] == 1
    assert queued_syncs(app) == []


def test_an_unknown_subscription_is_looked_up_again_on_its_next_notification(app, client, rooms):
    assert post(client, [notification("sub-new", SECRET_B)]).json["unknown_subscription"] == 1
    change_link_elsewhere(app, rooms["b"], subscription_id="sub-new")
    assert post(client, [notification("sub-new", SECRET_B)]).json["accepted"] == 1
    assert queued_syncs(app) == [("sync_link", str(rooms["b"]))]


def test_a_warmed_up_worker_has_its_connections_open_and_its_routes_read(app, client, rooms, link_reads):
    warm_up(app, connections=3)
    with app.app_context():
        assert db.engine.pool.checkedin() >= 3
    reads = len(link_reads)
    assert post(client, [notification("sub-a", SECRET_A), notification("sub-b", SECRET_B)]).json["accepted"] == 2
    assert len(link_reads) == reads


def test_a_worker_starts_even_when_the_database_is_not_there_yet(tmp_path, caplog):
    unreachable = create_app(config_for("postgresql+psycopg://nobody@127.0.0.1:9/none"), instance_path=str(tmp_path))
    warm_up(unreachable, connections=2)
    assert "Could not warm up the database connections" in caplog.text
