"""Subscriptions: created with the right body, renewed in batches, recreated when Graph forgot them."""

import json
from datetime import timedelta

import pytest
import responses

from app.extensions import db
from app.graph.errors import GraphForbidden
from app.models import CalendarLink
from app.subscriptions import lifecycle
from tests.sync_helpers import GRAPH, graph_client, make_room_link

EXTENSION_ERROR = {
    "error": {"code": "ExtensionError", "message": "Subscription expiration can only be 4230 minutes in the future."}
}


def created(subscription_id, expiry="2026-11-28T12:00:00Z"):
    return {
        "id": subscription_id,
        "expirationDateTime": expiry,
        "resource": "x",
        "changeType": "created,updated,deleted",
    }


@pytest.fixture
def link_id(app, world, clock):
    with app.app_context():
        return make_room_link(world, upn="room@contoso.example").id


def test_a_subscription_is_created_for_the_rooms_events_with_a_secret_client_state(app, link_id, clock):
    with app.app_context(), responses.RequestsMock() as mock:
        mock.post(f"{GRAPH}/subscriptions", status=201, json=created("sub-1"))
        link = db.session.get(CalendarLink, link_id)
        lifecycle.subscribe(link, graph_client())
        db.session.commit()
        sent = json.loads(mock.calls[0].request.body)
        assert sent["resource"] == "users/room@contoso.example/events"
        assert sent["changeType"] == "created,updated,deleted"
        assert sent["notificationUrl"] == "https://portal.test/webhooks/graph"
        assert sent["lifecycleNotificationUrl"] == "https://portal.test/webhooks/graph/lifecycle"
        assert sent["expirationDateTime"] == "2026-11-28T12:00:00.0000000Z"  # three days
        assert 20 <= len(sent["clientState"]) <= 128
        assert 'IdType="ImmutableId"' in mock.calls[0].request.headers["Prefer"]
        link = db.session.get(CalendarLink, link_id)
        assert link.subscription_id == "sub-1"
        assert link.subscription_client_state == sent["clientState"]
        assert link.subscription_expires_at == clock.now + timedelta(days=3)
        raw = db.session.execute(db.text("SELECT subscription_client_state FROM calendar_links")).scalar_one()
        assert sent["clientState"] not in raw


def test_each_subscription_gets_its_own_client_state(app, link_id):
    with app.app_context(), responses.RequestsMock() as mock:
        mock.post(f"{GRAPH}/subscriptions", status=201, json=created("sub-1"))
        mock.delete(f"{GRAPH}/subscriptions/sub-1", status=204)
        link = db.session.get(CalendarLink, link_id)
        lifecycle.subscribe(link, graph_client())
        first = link.subscription_client_state
        lifecycle.subscribe(link, graph_client())  # replaces, deleting the old one first
        assert link.subscription_client_state != first
        assert [c.request.method for c in mock.calls] == ["POST", "DELETE", "POST"]


def test_a_too_long_lifetime_is_retried_shorter(app, link_id, clock):
    with app.app_context(), responses.RequestsMock() as mock:
        mock.post(f"{GRAPH}/subscriptions", status=400, json=EXTENSION_ERROR)
        mock.post(f"{GRAPH}/subscriptions", status=201, json=created("sub-2"))
        lifecycle.subscribe(db.session.get(CalendarLink, link_id), graph_client())
        second = json.loads(mock.calls[1].request.body)
        assert second["expirationDateTime"] == (clock.now + timedelta(minutes=4200)).strftime(
            "%Y-%m-%dT%H:%M:%S.0000000Z"
        )


def test_renewal_patches_the_expiry_and_recreates_a_forgotten_subscription(app, link_id, clock):
    with app.app_context(), responses.RequestsMock() as mock:
        link = db.session.get(CalendarLink, link_id)
        link.subscription_id, link.subscription_client_state = "old", "s"
        mock.patch(f"{GRAPH}/subscriptions/old", status=404, json={"error": {"code": "ResourceNotFound"}})
        mock.post(f"{GRAPH}/subscriptions", status=201, json=created("new"))
        lifecycle.renew(link, graph_client())
        assert link.subscription_id == "new"


def test_links_due_for_renewal_are_those_within_two_days_of_expiry(app, world, clock):
    with app.app_context():
        soon = make_room_link(world, upn="soon@contoso.example")
        later = CalendarLink(
            integration_id=soon.integration_id, mailbox="later@contoso.example", object_id=world.a.object
        )
        off = CalendarLink(
            integration_id=soon.integration_id, mailbox="off@contoso.example", object_id=world.a.object, enabled=False
        )
        bare = CalendarLink(
            integration_id=soon.integration_id, mailbox="bare@contoso.example", object_id=world.a.object
        )
        db.session.add_all([later, off, bare])
        soon.subscription_id, soon.subscription_expires_at = "s1", clock.now + timedelta(hours=47)
        later.subscription_id, later.subscription_expires_at = "s2", clock.now + timedelta(hours=49)
        off.subscription_id, off.subscription_expires_at = "s3", clock.now + timedelta(hours=1)
        db.session.commit()
        assert [link.mailbox for link in lifecycle.links_due_for_renewal(clock.now)] == ["soon@contoso.example"]
        assert [link.mailbox for link in lifecycle.links_missing_a_subscription(clock.now)] == ["bare@contoso.example"]
        clock.advance(timedelta(hours=50))
        assert "later@contoso.example" in [link.mailbox for link in lifecycle.links_missing_a_subscription(clock.now)]


def test_many_renewals_go_through_batch_twenty_at_a_time(app, world, clock):
    with app.app_context():
        first = make_room_link(world, upn="room-0@contoso.example")
        links = [first] + [
            CalendarLink(
                integration_id=first.integration_id, mailbox=f"room-{n}@contoso.example", object_id=world.a.object
            )
            for n in range(1, 45)
        ]
        db.session.add_all(links)
        for n, link in enumerate(links):
            link.subscription_id, link.subscription_expires_at = f"sub-{n}", clock.now + timedelta(hours=1)
        db.session.commit()

        def answer(request):
            body = json.loads(request.body)
            replies = []
            for item in body["requests"]:
                if item["url"] == "/subscriptions/sub-3":
                    replies.append({"id": item["id"], "status": 404, "body": {"error": {"code": "ResourceNotFound"}}})
                elif item["url"] == "/subscriptions/sub-4":
                    replies.append({"id": item["id"], "status": 403, "body": {"error": {"code": "ErrorAccessDenied"}}})
                else:
                    replies.append(
                        {"id": item["id"], "status": 200, "body": {"expirationDateTime": "2026-11-28T12:00:00Z"}}
                    )
            return 200, {}, json.dumps({"responses": replies})

        with responses.RequestsMock() as mock:
            mock.add_callback(responses.POST, f"{GRAPH}/$batch", callback=answer, content_type="application/json")
            gone = lifecycle.renew_batch(lifecycle.links_due_for_renewal(clock.now), graph_client())
            assert len(mock.calls) == 3  # 45 renewals: 20 + 20 + 5
            assert json.loads(mock.calls[0].request.body)["requests"][0]["method"] == "PATCH"
        assert [link.mailbox for link in gone] == ["room-3@contoso.example"]
        assert gone[0].subscription_id is None
        denied = db.session.scalar(db.select(CalendarLink).where(CalendarLink.mailbox == "room-4@contoso.example"))
        assert "ErrorAccessDenied" in denied.subscription_error
        renewed = db.session.scalar(db.select(CalendarLink).where(CalendarLink.mailbox == "room-9@contoso.example"))
        assert renewed.subscription_expires_at == clock.now + timedelta(days=3)


def test_a_tenant_capping_the_lifetime_gets_the_shorter_one_in_batches_too(app, world, clock):
    with app.app_context():
        first = make_room_link(world, upn="room-0@contoso.example")
        links = [first] + [
            CalendarLink(
                integration_id=first.integration_id, mailbox=f"room-{n}@contoso.example", object_id=world.a.object
            )
            for n in range(1, 30)
        ]
        db.session.add_all(links)
        for n, link in enumerate(links):
            link.subscription_id, link.subscription_expires_at = f"sub-{n}", clock.now + timedelta(hours=1)
        db.session.commit()
        shorter = (clock.now + timedelta(minutes=4200)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")

        def answer(request):
            replies = []
            for item in json.loads(request.body)["requests"]:
                if item["body"]["expirationDateTime"] != shorter:
                    replies.append({"id": item["id"], "status": 400, "body": EXTENSION_ERROR})
                else:
                    replies.append({"id": item["id"], "status": 200, "body": {"expirationDateTime": shorter}})
            return 200, {}, json.dumps({"responses": replies})

        with responses.RequestsMock() as mock:
            mock.add_callback(responses.POST, f"{GRAPH}/$batch", callback=answer, content_type="application/json")
            gone = lifecycle.renew_batch(lifecycle.links_due_for_renewal(clock.now), graph_client())
            # 30 renewals refused as too long, then granted shorter: 2 + 2 batches, no single PATCH.
            assert [call.request.url for call in mock.calls] == [f"{GRAPH}/$batch"] * 4
        assert gone == []
        for link in db.session.scalars(db.select(CalendarLink)):
            assert link.subscription_expires_at == clock.now + timedelta(minutes=4200)
            assert link.subscription_error is None


def test_unsubscribe_deletes_in_graph_and_tolerates_an_already_deleted_one(app, link_id):
    with app.app_context(), responses.RequestsMock() as mock:
        link = db.session.get(CalendarLink, link_id)
        link.subscription_id, link.subscription_client_state = "sub-x", "s"
        mock.delete(f"{GRAPH}/subscriptions/sub-x", status=404, json={"error": {"code": "ResourceNotFound"}})
        lifecycle.unsubscribe(link, graph_client())
        assert (link.subscription_id, link.subscription_client_state) == (None, None)


def test_a_denied_subscription_raises_for_the_caller_to_record(app, link_id):
    with app.app_context(), responses.RequestsMock() as mock:
        mock.post(f"{GRAPH}/subscriptions", status=403, json={"error": {"code": "ErrorAccessDenied"}})
        with pytest.raises(GraphForbidden):
            lifecycle.subscribe(db.session.get(CalendarLink, link_id), graph_client())
