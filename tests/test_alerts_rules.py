"""Each alert rule opens its incident once, reminds daily, and resolves by itself."""

import json
from datetime import timedelta

import pytest
import responses
from sqlalchemy import select

from app.alerts import incidents, rules
from app.alerts.rules import Finding
from app.database import server_time
from app.extensions import db
from app.graph import tokens
from app.graph.errors import GraphForbidden
from app.jobs import handlers, queue
from app.models import AlertCondition, CalendarLink, Incident, Integration, User
from app.models.calendar_link import SYNC_ERROR, SYNC_OK
from app.models.incident import SEVERITY_WARNING, SUBJECT_INSTALLATION
from app.models.integration import CONNECTION_CONNECTED, CONNECTION_NEEDS_RECONNECT, CONNECTION_NOT_CONNECTED
from app.scheduler import lease, periodic
from app.sync.engine import sync_link
from tests.alert_helpers import HOOK_A, alert_jobs, all_incidents, only_open, open_incidents, set_webhook
from tests.sync_helpers import GRAPH, at, delta_url, event, graph_client, make_room_link, page

ROOM = "room-a@contoso.example"


@pytest.fixture
def ctx(app, world, clock):
    with app.app_context():
        set_webhook(world.a.org, HOOK_A)
        yield app


@pytest.fixture
def link(ctx, world):
    return make_room_link(world)


def evaluate(clock):
    return incidents.evaluate(clock.now)


def kinds_open():
    # Jobs left waiting while a test moves the clock by hours form a backlog of their own.
    return sorted((i.kind, i.subject) for i in open_incidents() if i.kind != rules.QUEUE_BACKLOG)


# -- needs reconnect ---------------------------------------------------------------------


def test_an_integration_that_needs_reconnecting_opens_one_incident_and_resolves_when_connected(ctx, link, clock, world):
    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    link.integration.connection_error = "The sign-in was revoked, for example after a password reset (AADSTS50173)"
    db.session.commit()

    outcome = evaluate(clock)

    incident = only_open(rules.NEEDS_RECONNECT)
    assert outcome.opened == [incident]
    assert (incident.organisation_id, incident.integration_id, incident.link_id) == (
        world.a.org,
        link.integration_id,
        None,
    )
    assert incident.subject == f"integration:{link.integration_id}"
    assert incident.severity == "critical"
    assert "AADSTS50173" in incident.message and "Rooms" in incident.message
    assert alert_jobs() == [f"{incident.id}:opened:webhook"]

    clock.advance(timedelta(minutes=1))
    evaluate(clock)
    assert alert_jobs() == [f"{incident.id}:opened:webhook"], "one notification per incident"

    link.integration.connection_state = CONNECTION_CONNECTED
    db.session.commit()
    clock.advance(timedelta(minutes=1))
    outcome = evaluate(clock)

    assert outcome.resolved == [incident]
    assert open_incidents() == []
    assert db.session.get(Incident, incident.id).resolved_at == clock.now
    assert alert_jobs()[-1] == f"{incident.id}:resolved:webhook"


# -- failing calendar --------------------------------------------------------------------


def register_denied(mock):
    mock.get(
        delta_url(ROOM),
        status=403,
        json={"error": {"code": "ErrorAccessDenied", "message": "Access is denied. Check credentials and try again."}},
    )


def fail_sync(link_id):
    with responses.RequestsMock() as mock:
        register_denied(mock)
        with pytest.raises(GraphForbidden):
            sync_link(link_id, client=graph_client(max_attempts=1))


def succeed_sync(link_id):
    with responses.RequestsMock() as mock:
        mock.get(delta_url(ROOM), json=page([], delta_link=f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=1"))
        sync_link(link_id, client=graph_client(max_attempts=1))


def test_the_engine_counts_failed_syncs_in_a_row_and_forgets_them_after_a_good_one(ctx, link, clock):
    fail_sync(link.id)
    clock.advance(timedelta(minutes=5))
    fail_sync(link.id)

    link = db.session.get(CalendarLink, link.id)
    assert (link.consecutive_failures, link.failing_since) == (2, clock.now - timedelta(minutes=5))

    succeed_sync(link.id)
    link = db.session.get(CalendarLink, link.id)
    assert (link.last_sync_status, link.consecutive_failures, link.failing_since) == (SYNC_OK, 0, None)


def test_a_calendar_failing_for_more_than_an_hour_opens_an_incident_and_a_good_sync_resolves_it(ctx, link, clock):
    fail_sync(link.id)
    clock.advance(timedelta(minutes=59))
    fail_sync(link.id)
    evaluate(clock)
    assert open_incidents() == []

    clock.advance(timedelta(minutes=2))
    evaluate(clock)
    incident = only_open(rules.LINK_FAILING)
    assert (incident.link_id, incident.mailbox, incident.subject) == (link.id, ROOM, f"link:{link.id}")
    assert "Access is denied" in incident.message
    assert "since 2026-11-25 13:00 (Europe/Amsterdam) (2 attempt(s) in a row)" in incident.message

    succeed_sync(link.id)
    evaluate(clock)
    assert open_incidents() == []
    assert [key.split(":", 1)[1] for key in alert_jobs()] == ["opened:webhook", "resolved:webhook"]


def test_a_calendar_failing_five_times_in_a_row_opens_an_incident_at_once(ctx, link, clock):
    for _ in range(4):
        fail_sync(link.id)
    evaluate(clock)
    assert open_incidents() == []

    fail_sync(link.id)
    evaluate(clock)
    assert only_open(rules.LINK_FAILING).link_id == link.id


def test_calendar_incidents_wait_while_their_integration_needs_reconnecting(ctx, link, clock):
    link.last_sync_status, link.consecutive_failures = SYNC_ERROR, 9
    db.session.commit()
    evaluate(clock)
    failing = only_open(rules.LINK_FAILING)

    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    db.session.commit()
    clock.advance(timedelta(hours=30))
    evaluate(clock)
    assert kinds_open() == sorted(
        [(rules.LINK_FAILING, failing.subject), (rules.NEEDS_RECONNECT, f"integration:{link.integration_id}")]
    )
    assert f"{failing.id}:reminder:webhook" not in alert_jobs(), "its state is unknown: no reminder either"

    link.integration.connection_state = CONNECTION_NOT_CONNECTED  # disconnected on purpose
    db.session.commit()
    evaluate(clock)
    assert kinds_open() == []


def test_a_disabled_or_removed_calendar_resolves_its_incident(ctx, link, clock):
    link.last_sync_status, link.consecutive_failures = SYNC_ERROR, 9
    db.session.commit()
    evaluate(clock)
    incident = only_open(rules.LINK_FAILING)

    db.session.delete(db.session.get(CalendarLink, link.id))
    db.session.commit()
    evaluate(clock)

    incident = db.session.get(Incident, incident.id)
    assert incident.resolved_at == clock.now
    assert (incident.link_id, incident.mailbox) == (None, ROOM), "the history keeps the calendar's name"


# -- subscriptions -----------------------------------------------------------------------


def test_a_subscription_that_cannot_be_created_opens_an_incident_after_an_hour(ctx, link, clock):
    link.subscription_error = "Subscription validation request failed. Notification endpoint must respond with 200 OK"
    db.session.commit()

    evaluate(clock)
    assert open_incidents() == []
    assert db.session.scalar(select(AlertCondition.first_seen_at)) == clock.now

    clock.advance(timedelta(minutes=59))
    evaluate(clock)
    assert open_incidents() == []

    clock.advance(timedelta(minutes=2))
    evaluate(clock)
    incident = only_open(rules.SUBSCRIPTION_MISSING)
    assert incident.severity == SEVERITY_WARNING
    assert "Notification endpoint must respond" in incident.message
    assert "https://portal.test/webhooks/graph" in incident.message

    link.subscription_error = None
    link.subscription_id, link.subscription_expires_at = "sub-1", clock.now + timedelta(days=3)
    db.session.commit()
    evaluate(clock)
    assert open_incidents() == []
    assert db.session.scalars(select(AlertCondition)).all() == []


def test_a_condition_that_clears_for_a_moment_starts_its_hour_again(ctx, link, clock):
    evaluate(clock)  # no subscription at all
    clock.advance(timedelta(minutes=40))
    link.subscription_id, link.subscription_expires_at = "sub-1", clock.now + timedelta(days=3)
    db.session.commit()
    evaluate(clock)
    link.subscription_id = None
    db.session.commit()
    clock.advance(timedelta(minutes=30))
    evaluate(clock)
    clock.advance(timedelta(minutes=35))
    evaluate(clock)
    assert open_incidents() == [], "105 minutes since it was first seen, but only 35 without a break"
    clock.advance(timedelta(minutes=26))
    evaluate(clock)
    assert only_open(rules.SUBSCRIPTION_MISSING).link_id == link.id


# -- notifications that do not arrive -----------------------------------------------------


@pytest.fixture
def subscribed(link, clock):
    link.created_at = clock.now - timedelta(days=3)
    link.subscription_id, link.subscription_client_state = "sub-a", "client-state-a-0123456789"
    link.subscription_expires_at = clock.now + timedelta(days=2)
    link.last_notification_at = clock.now - timedelta(days=2)
    link.delta_link = f"{GRAPH}/users/{ROOM}/calendarView/delta?$deltatoken=0"
    link.window_start, link.window_end = clock.now - timedelta(days=90), clock.now + timedelta(days=365)
    link.last_full_sync_at = clock.now
    db.session.commit()
    return link


def test_polling_that_finds_changes_no_notification_announced_is_recorded(ctx, subscribed, clock, monkeypatch):
    monkeypatch.setattr(tokens, "graph_client_for", lambda integration, **_: graph_client(max_attempts=1))
    periodic.poll_stale_links(clock.now + timedelta(minutes=31))
    assert (
        db.session.scalar(select(queue.Job.payload_json).where(queue.Job.kind == handlers.SYNC_LINK))
        == '{"reason":"poll"}'
    )

    with responses.RequestsMock() as mock:
        mock.get(subscribed.delta_link, json=page([], delta_link=subscribed.delta_link))
        handlers.run_link_sync(str(subscribed.id), {"reason": "poll"})
    assert db.session.get(CalendarLink, subscribed.id).last_poll_change_at is None, "nothing changed"

    with responses.RequestsMock() as mock:
        mock.get(
            subscribed.delta_link, json=page([event("ev-1", at(1, 9), at(1, 10))], delta_link=subscribed.delta_link)
        )
        handlers.run_link_sync(str(subscribed.id), {})
    assert db.session.get(CalendarLink, subscribed.id).last_poll_change_at is None, "not started by polling"

    with responses.RequestsMock() as mock:
        mock.get(
            subscribed.delta_link, json=page([event("ev-2", at(2, 9), at(2, 10))], delta_link=subscribed.delta_link)
        )
        handlers.run_link_sync(str(subscribed.id), {"reason": "poll"})
    assert db.session.get(CalendarLink, subscribed.id).last_poll_change_at == clock.now


def test_a_day_without_notifications_while_polling_finds_changes_opens_an_incident(ctx, subscribed, clock, client):
    subscribed.last_poll_change_at = clock.now - timedelta(minutes=10)
    db.session.commit()

    evaluate(clock)
    incident = only_open(rules.WEBHOOK_SILENT)
    assert "no change notification since 2026-11-23 13:00 (Europe/Amsterdam)" in incident.message
    assert "last at 2026-11-25 12:50 (Europe/Amsterdam)" in incident.message
    assert "https://portal.test/webhooks/graph" in incident.message

    body = {"value": [{"subscriptionId": "sub-a", "clientState": "client-state-a-0123456789", "changeType": "updated"}]}
    assert client.post("/webhooks/graph", data=json.dumps(body), content_type="application/json").status_code == 202
    db.session.expire_all()
    assert db.session.get(CalendarLink, subscribed.id).last_notification_at == clock.now

    evaluate(clock)
    assert open_incidents() == []


def test_the_webhook_records_arrival_with_one_statement_per_body(ctx, subscribed, clock, client, world):
    other = CalendarLink(
        integration_id=subscribed.integration_id, mailbox="b@contoso.example", object_id=world.a.object
    )
    other.subscription_id, other.subscription_client_state = "sub-b", "client-state-b-0123456789"
    db.session.add(other)
    db.session.commit()
    statements = []

    from sqlalchemy import event as sa_event

    def count_updates(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE CALENDAR_LINKS"):
            statements.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", count_updates)
    try:
        items = [
            {"subscriptionId": "sub-a", "clientState": "client-state-a-0123456789"},
            {"subscriptionId": "sub-b", "clientState": "client-state-b-0123456789"},
            {"subscriptionId": "sub-a", "clientState": "client-state-a-0123456789"},
            {"subscriptionId": "sub-b", "clientState": "forged"},
        ]
        client.post("/webhooks/graph", data=json.dumps({"value": items}), content_type="application/json")
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", count_updates)
    assert len(statements) == 1
    db.session.expire_all()
    assert db.session.get(CalendarLink, other.id).last_notification_at == clock.now


def test_no_webhook_incident_for_a_calendar_subscribed_less_than_a_day_ago(ctx, subscribed, clock):
    subscribed.created_at = clock.now - timedelta(hours=2)
    subscribed.last_notification_at = None
    subscribed.last_poll_change_at = clock.now - timedelta(minutes=10)
    db.session.commit()
    evaluate(clock)
    assert open_incidents() == []


# -- background work ---------------------------------------------------------------------


def park(kind, key, payload=None, message="boom"):
    queue.enqueue(kind, key, payload=payload)
    db.session.commit()
    job = queue.claim("w", [kind])
    queue.fail(job, RuntimeError(message), transient=False)
    return job.id


def test_parked_jobs_open_one_incident_per_integration_and_one_for_the_installation(ctx, link, clock, world):
    park("outbound_booking", f"{link.integration_id}:41", message="GraphForbidden: 403 Access is denied")
    park("delete_subscription", "sub-x", {"integration_id": link.integration_id})
    park(handlers.SYNC_LINK, str(link.id))  # reported by the failing-calendar rule instead

    evaluate(clock)
    by_subject = {incident.subject: incident for incident in open_incidents()}
    assert set(by_subject) == {f"integration:{link.integration_id}", SUBJECT_INSTALLATION}
    assert by_subject[f"integration:{link.integration_id}"].organisation_id == world.a.org
    assert "1 background job(s) of Rooms" in by_subject[f"integration:{link.integration_id}"].message
    installation = by_subject[SUBJECT_INSTALLATION]
    assert installation.organisation_id is None and "delete_subscription" in installation.message
    assert f"{installation.id}:opened:webhook" not in alert_jobs(), "an installation incident has no customer webhook"

    queue.retry_all_failed()
    evaluate(clock)
    assert open_incidents() == []


def test_a_queue_backlog_opens_an_incident(ctx, clock, app):
    app.config["ALERT_QUEUE_BACKLOG_JOBS"] = 2
    for key in range(3):
        queue.enqueue("some_kind", key)
    db.session.commit()

    evaluate(clock)
    assert open_incidents() == [], "too many due jobs must last a while first"
    clock.advance(timedelta(minutes=16))
    evaluate(clock)
    incident = only_open(rules.QUEUE_BACKLOG)
    assert incident.organisation_id is None and "3 background job(s) are due" in incident.message

    db.session.execute(db.delete(queue.Job))
    db.session.commit()
    evaluate(clock)
    assert open_incidents() == []


def test_a_job_due_for_too_long_opens_the_backlog_incident_at_once(ctx, clock):
    queue.enqueue("some_kind", "1", run_at=clock.now - timedelta(minutes=20))
    db.session.commit()
    evaluate(clock)
    assert "the oldest since 2026-11-25 11:40 UTC" in only_open(rules.QUEUE_BACKLOG).message


def test_a_silent_scheduler_opens_an_incident_and_its_next_tick_resolves_it(ctx, clock):
    evaluate(clock)
    assert open_incidents() == [], "a scheduler that never ran is shown by the portal, not alerted"

    lease.acquire("host:1:abc", now=server_time.database_now() - timedelta(minutes=6))
    evaluate(clock)
    incident = only_open(rules.SCHEDULER_DOWN)
    assert incident.severity == "critical" and "has not renewed its lease since" in incident.message

    lease.acquire("host:1:abc")
    evaluate(clock)
    assert open_incidents() == []


# -- the life of an incident -------------------------------------------------------------


def test_reminders_come_daily_until_acknowledged_and_the_resolve_notice_comes_anyway(ctx, link, clock, world):
    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    db.session.commit()
    evaluate(clock)
    incident = only_open(rules.NEEDS_RECONNECT)

    clock.advance(timedelta(hours=23, minutes=59))
    evaluate(clock)
    assert alert_jobs() == [f"{incident.id}:opened:webhook"]

    clock.advance(timedelta(minutes=1))
    outcome = evaluate(clock)
    assert outcome.reminded == [incident]
    assert alert_jobs() == [f"{incident.id}:opened:webhook", f"{incident.id}:reminder:webhook"]
    evaluate(clock)
    assert len(alert_jobs()) == 2

    admin = db.session.scalar(select(User).where(User.email == world.a.admin))
    assert incidents.acknowledge(incident, admin, now=clock.now)
    assert not incidents.acknowledge(incident, admin, now=clock.now), "once is enough"
    clock.advance(timedelta(days=3))
    evaluate(clock)
    assert len(alert_jobs()) == 2, "acknowledged: no more reminders"

    link.integration.connection_state = CONNECTION_CONNECTED
    db.session.commit()
    evaluate(clock)
    assert alert_jobs()[-1] == f"{incident.id}:resolved:webhook"
    assert db.session.get(Incident, incident.id).acknowledged_by == world.a.admin


def test_a_condition_that_returns_after_resolving_opens_a_new_incident(ctx, link, clock):
    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    db.session.commit()
    evaluate(clock)
    link.integration.connection_state = CONNECTION_CONNECTED
    db.session.commit()
    evaluate(clock)
    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    db.session.commit()
    evaluate(clock)
    assert [incident.state for incident in all_incidents()] == ["resolved", "open"]


def test_the_database_keeps_one_open_incident_per_kind_and_subject(ctx, link, clock):
    finding = Finding(
        rules.NEEDS_RECONNECT, "integration:1", "critical", "x", organisation_id=link.integration.organisation_id
    )
    first = incidents._open(finding, clock.now)
    assert first is not None
    assert incidents._open(finding, clock.now) is None
    db.session.commit()
    assert len(all_incidents()) == 1 and len(alert_jobs()) == 1


def test_without_channels_an_incident_still_opens_and_nothing_is_queued(ctx, link, clock, world):
    set_webhook(world.a.org, None)
    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    db.session.commit()
    evaluate(clock)
    assert only_open(rules.NEEDS_RECONNECT) and alert_jobs() == []


def test_email_is_queued_once_per_notification_when_smtp_is_set(ctx, link, clock, app):
    app.config["SMTP_HOST"] = "127.0.0.1"
    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    db.session.commit()
    evaluate(clock)
    incident = only_open(rules.NEEDS_RECONNECT)
    assert alert_jobs() == [f"{incident.id}:opened:email", f"{incident.id}:opened:webhook"]


def test_the_scheduler_evaluates_every_minute():
    scheduled = {job.name: job for job in periodic.load_periodic_jobs()}
    assert scheduled["evaluate_alerts"].function is incidents.evaluate_alerts
    assert scheduled["evaluate_alerts"].every == timedelta(minutes=1)


def test_an_integration_without_trouble_opens_nothing(ctx, link, clock):
    link.subscription_id, link.subscription_expires_at = "sub-1", clock.now + timedelta(days=3)
    link.last_sync_status = SYNC_OK
    db.session.commit()
    for _ in range(3):
        evaluate(clock)
        clock.advance(timedelta(hours=2))
    assert all_incidents() == [] and alert_jobs() == []
    assert db.session.get(Integration, link.integration_id).connection_state == CONNECTION_CONNECTED
