"""Subscriptions: the validation handshake, lifetime, renewal, and notifications delivered, retried, dropped."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakegraph.conftest import OTHER_USER, ROOM, ROOM_2
from tests.live import eventually


def expiry(minutes=3 * 24 * 60):
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def delivery_outcomes(stand, until):
    """The outcomes in the delivery log once the last one is *until*, else None."""
    outcomes = [d["outcome"] for d in stand.control("notifications", method="GET")["deliveries"]]
    return outcomes if outcomes and outcomes[-1] == until else None


def subscribe(stand, receiver, token, resource=f"users/{ROOM}/events", **fields):
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": f"{receiver.url}/notify?tenant=contoso",
        "lifecycleNotificationUrl": f"{receiver.url}/lifecycle",
        "resource": resource,
        "expirationDateTime": expiry(),
        "clientState": "secret-client-state",
    }
    body.update(fields)
    return stand.call("POST", "subscriptions", token, json=body)


def test_creating_validates_both_urls_with_the_decoded_token(stand, receiver):
    created = subscribe(stand, receiver, stand.app_token())
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["resource"] == f"users/{ROOM}/events"
    assert body["clientState"] == "secret-client-state"
    assert body["changeType"] == "created,updated,deleted"
    assert body["expirationDateTime"].endswith("Z")
    paths = [path for path, _, _ in receiver.validations]
    assert paths == ["/notify", "/lifecycle"]
    token, content_type = receiver.validations[0][1], receiver.validations[0][2]
    assert token.startswith("Validation: Testing client application reachability")  # decoded, with spaces
    assert content_type.startswith("text/plain")


def test_an_endpoint_that_fails_the_handshake_gets_no_subscription(stand, receiver):
    receiver.validation_answer = "wrong"
    refused = subscribe(stand, receiver, stand.app_token())
    assert refused.status_code == 400
    assert refused.get_json()["error"]["message"].startswith("Subscription validation request failed")
    unreachable = subscribe(stand, receiver, stand.app_token(), notificationUrl="http://127.0.0.1:9/nothing")
    assert unreachable.status_code == 400
    assert stand.control("subscriptions", method="GET")["value"] == []


def test_the_lifetime_is_capped_and_the_legacy_cap_is_4230_minutes(stand, receiver):
    token = stand.app_token()
    too_long = subscribe(stand, receiver, token, expirationDateTime=expiry(10080 + 5))
    assert too_long.status_code == 400
    assert too_long.get_json()["error"]["code"] == "ExtensionError"
    assert subscribe(stand, receiver, token, expirationDateTime=expiry(10000)).status_code == 201
    stand.control("settings", {"max_subscription_minutes": 4230})
    legacy = subscribe(stand, receiver, token)
    assert legacy.get_json()["error"] == {
        **legacy.get_json()["error"],
        "code": "ExtensionError",
        "message": "Subscription expiration can only be 4230 minutes in the future.",
    }
    assert subscribe(stand, receiver, token, expirationDateTime=expiry(4200)).status_code == 201
    past = subscribe(stand, receiver, token, expirationDateTime=expiry(-5))
    assert past.status_code == 400


def test_renew_delete_and_unknown_ids(stand, receiver):
    token = stand.app_token()
    subscription = subscribe(stand, receiver, token).get_json()
    later = expiry(6 * 24 * 60)
    renewed = stand.call("PATCH", f"subscriptions/{subscription['id']}", token, json={"expirationDateTime": later})
    assert renewed.status_code == 200
    assert renewed.get_json()["expirationDateTime"] == later.split(".")[0] + "Z"
    refused = stand.call(
        "PATCH",
        f"subscriptions/{subscription['id']}",
        token,
        json={"lifecycleNotificationUrl": f"{receiver.url}/other"},
    )
    assert refused.status_code == 400
    assert stand.call("DELETE", f"subscriptions/{subscription['id']}", token).status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        gone = stand.call(method, f"subscriptions/{subscription['id']}", token, json={"expirationDateTime": later})
        assert gone.status_code == 404


def test_a_change_in_the_mailbox_is_notified_with_the_client_state(stand, receiver):
    token = stand.app_token()
    subscription = subscribe(stand, receiver, token).get_json()
    created = stand.appointment(attendees=[ROOM], subject="New", start="2026-12-02T09:00", end="2026-12-02T10:00")
    stand.appointment(attendees=[ROOM_2], subject="Elsewhere", start="2026-12-02T09:00", end="2026-12-02T10:00")
    items = eventually(lambda: receiver.notifications())
    event_id = created["events"][ROOM]
    assert len(items) == 1
    item = items[0]
    assert item["subscriptionId"] == subscription["id"]
    assert item["clientState"] == "secret-client-state"
    assert item["changeType"] == "created"
    assert item["resourceData"]["id"] == event_id
    assert item["resource"].endswith(f"/Events/{event_id}") and item["resource"].startswith("Users/")
    assert item["tenantId"] == "11111111-2222-3333-4444-555555555555"

    stand.control(f"appointments/{created['uid']}/cancel")
    updated = eventually(lambda: receiver.notifications()[1:])
    assert [i["changeType"] for i in updated] == ["updated"]


def test_only_wanted_change_types_are_sent(stand, receiver):
    subscribe(stand, receiver, stand.app_token(), changeType="deleted")
    created = stand.appointment(attendees=[ROOM], subject="New", start="2026-12-02T09:00", end="2026-12-02T10:00")
    stand.control(f"appointments/{created['uid']}", method="DELETE")
    items = eventually(lambda: receiver.notifications())
    assert [i["changeType"] for i in items] == ["deleted"]


def test_a_refused_delivery_is_retried_until_it_is_accepted(stand, receiver):
    subscribe(stand, receiver, stand.app_token())
    receiver.statuses.extend([500, 503])
    stand.appointment(attendees=[ROOM], subject="New", start="2026-12-02T09:00", end="2026-12-02T10:00")
    outcomes = eventually(lambda: delivery_outcomes(stand, until="delivered"))
    assert outcomes == ["retrying", "retrying", "delivered"]
    assert [post["status"] for post in receiver.posts] == [500, 503, 202]
    assert len(receiver.notifications()) == 1


def test_retries_are_bounded(stand, receiver):
    subscribe(stand, receiver, stand.app_token())
    receiver.statuses.extend([500] * 10)
    stand.appointment(attendees=[ROOM], subject="New", start="2026-12-02T09:00", end="2026-12-02T10:00")
    assert eventually(lambda: delivery_outcomes(stand, until="given up")) == ["retrying", "retrying", "given up"]
    assert len(receiver.posts) == 3  # the first delivery and one retry per configured delay


def test_an_expired_subscription_is_gone_and_notifies_no_more(stand, receiver):
    token = stand.app_token()
    subscription = subscribe(stand, receiver, token, expirationDateTime=expiry(60)).get_json()
    stand.control("clock", {"advance_seconds": 3601})
    stand.appointment(attendees=[ROOM], subject="New", start="2026-12-02T09:00", end="2026-12-02T10:00")
    stand.control("clock", {"advance_seconds": -3601})  # back in time: Graph had deleted it meanwhile
    assert stand.call("GET", f"subscriptions/{subscription['id']}", token).status_code == 404
    assert receiver.posts == []


def test_subscriptions_are_visible_to_their_own_app_only(stand, receiver):
    subscription = subscribe(stand, receiver, stand.app_token()).get_json()
    delegated = stand.sign_in()["access_token"]
    assert stand.call("GET", f"subscriptions/{subscription['id']}", delegated).status_code == 200  # same app
    stand.control(
        "tenants/contoso.example/apps", {"client_id": "dddddddd-0000-0000-0000-000000000000", "client_secret": "x"}
    )
    other = stand.token(
        grant_type="client_credentials",
        client_id="dddddddd-0000-0000-0000-000000000000",
        client_secret="x",
        scope="https://graph.microsoft.com/.default",
    ).get_json()["access_token"]
    assert stand.call("GET", f"subscriptions/{subscription['id']}", other).status_code == 404


@pytest.mark.parametrize("event", ["missed", "reauthorizationRequired", "subscriptionRemoved"])
def test_lifecycle_notifications_go_to_the_lifecycle_url(stand, receiver, event):
    token = stand.app_token()
    subscription = subscribe(stand, receiver, token).get_json()
    stand.control(f"subscriptions/{subscription['id']}/lifecycle", {"event": event})
    items = eventually(lambda: receiver.notifications("/lifecycle"))
    assert items == [
        {
            "subscriptionId": subscription["id"],
            "subscriptionExpirationDateTime": subscription["expirationDateTime"],
            "tenantId": "11111111-2222-3333-4444-555555555555",
            "clientState": "secret-client-state",
            "lifecycleEvent": event,
        }
    ]
    still_there = stand.call("GET", f"subscriptions/{subscription['id']}", token).status_code == 200
    assert still_there is (event != "subscriptionRemoved")


def test_dropped_notifications_never_arrive(stand, receiver):
    subscribe(stand, receiver, stand.app_token())
    stand.control("notifications", {"drop": True, "mailbox": ROOM})
    stand.appointment(attendees=[ROOM], subject="Lost", start="2026-12-02T09:00", end="2026-12-02T10:00")
    stand.control("notifications", {"drop": False, "mailbox": ROOM})
    heard = stand.appointment(attendees=[ROOM], subject="Heard", start="2026-12-03T09:00", end="2026-12-03T10:00")
    assert eventually(lambda: delivery_outcomes(stand, until="delivered")) == ["dropped", "delivered"]
    assert [item["resourceData"]["id"] for item in receiver.notifications()] == [heard["events"][ROOM]]


def test_access_rules_apply_to_subscriptions(stand, receiver):
    delegated = stand.sign_in()["access_token"]
    assert subscribe(stand, receiver, delegated, resource="me/events").status_code == 201
    assert subscribe(stand, receiver, delegated, resource=f"users/{OTHER_USER}/events").status_code == 403
    app_only = stand.app_token()
    assert subscribe(stand, receiver, app_only, resource="me/events").status_code == 400
    assert subscribe(stand, receiver, app_only, resource="users/vault@contoso.example/events").status_code == 403
    assert subscribe(stand, receiver, app_only, resource=f"users/{ROOM}/messages").status_code == 400
