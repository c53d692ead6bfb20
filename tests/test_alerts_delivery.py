"""Notifications leave through the job queue: e-mail over SMTP and the organisation's webhook."""

import email
import email.policy
import json
import socket
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from responses import matchers
from sqlalchemy import select

from app.alerts import delivery, incidents, rules
from app.database import server_time
from app.extensions import db
from app.jobs import queue
from app.models import Incident, Job
from app.models.integration import CONNECTION_CONNECTED, CONNECTION_NEEDS_RECONNECT
from app.models.job import JOB_FAILED, JOB_QUEUED
from tests.alert_helpers import HOOK_A, HOOK_B, alert_jobs, install_fake_dns, only_open, run_alert_jobs, set_webhook
from tests.sync_helpers import make_room_link

SMTP_USER, SMTP_SECRET = "alerts@portal.test", "smtp-password-123"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self):
        return [
            (sorted(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=email.policy.default))
            for envelope in self.envelopes
        ]

    def recipients(self):
        return [recipients for recipients, _ in self.messages()]


def accept_only(login, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == login.encode() and auth_data.password == password.encode()
        return AuthResult(success=ok, handled=False)

    return authenticate


@pytest.fixture
def smtp_server(app):
    """A local SMTP server on a free port, with the app's SMTP settings pointing at it."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=accept_only(SMTP_USER, SMTP_SECRET),
        auth_require_tls=False,
    )
    controller.start()
    app.config.update(
        SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_TLS="none", ALERT_SENDER="i-Reserve <alerts@portal.test>"
    )
    try:
        yield mailbox
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    """The webhook's host names resolve to a public address without asking real DNS."""
    return install_fake_dns(monkeypatch)


@pytest.fixture
def ctx(app, world, clock):
    with app.app_context():
        yield app


def break_integration(world, organisation="a", upn=None):
    ids = getattr(world, organisation)
    link = make_room_link(world, upn=upn or f"room@{organisation}.example")
    if organisation != "a":
        link.integration.organisation_id = ids.org
        link.object_id = ids.object
    link.integration.name = f"Rooms {organisation.upper()}"
    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    link.integration.connection_error = "The client secret has expired (AADSTS7000222)"
    db.session.commit()
    return link.integration


# -- e-mail ----------------------------------------------------------------------------


def test_an_incident_is_mailed_to_its_organisations_admins_and_to_support_only(ctx, smtp_server, world, clock):
    break_integration(world, "a")
    break_integration(world, "b")
    incidents.evaluate(clock.now)
    assert run_alert_jobs() and set(run_alert_jobs().values()) <= {"sent"}

    by_organisation = {message["Subject"].split("– ")[1]: recipients for recipients, message in smtp_server.messages()}
    assert by_organisation == {
        "Alpha Rooms": sorted([world.a.admin, world.support]),
        "Beta Halls": sorted([world.b.admin, world.support]),
    }


def test_the_mail_says_what_happened_and_where_to_look(ctx, smtp_server, world, clock):
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    run_alert_jobs()

    [(recipients, message)] = smtp_server.messages()
    assert message["Subject"] == "[i-Reserve] Alert: Integration needs reconnecting – Alpha Rooms"
    assert message["From"] == "i-Reserve <alerts@portal.test>"
    assert message["To"] == "undisclosed-recipients:;", "customers and support do not see each other's addresses"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert "Integration Rooms A needs reconnecting: The client secret has expired (AADSTS7000222)." in body
    assert "Organisation: Alpha Rooms" in body and "Severity: critical" in body
    assert "Opened: 2026-11-25 13:00 (Europe/Amsterdam)" in body
    assert f"https://portal.test/orgs/{world.a.org}/incidents" in body


def test_resolving_is_mailed_too(ctx, smtp_server, world, clock):
    integration = break_integration(world, "a")
    incidents.evaluate(clock.now)
    run_alert_jobs()
    integration.connection_state = CONNECTION_CONNECTED
    db.session.commit()
    clock.advance(timedelta(minutes=5))
    incidents.evaluate(clock.now)
    run_alert_jobs()

    subjects = [message["Subject"] for _, message in smtp_server.messages()]
    assert subjects == [
        "[i-Reserve] Alert: Integration needs reconnecting – Alpha Rooms",
        "[i-Reserve] Resolved: Integration needs reconnecting – Alpha Rooms",
    ]
    assert "Resolved: 2026-11-25 13:05 (Europe/Amsterdam)" in smtp_server.messages()[1][1].get_content()


def test_an_installation_incident_is_mailed_to_support_alone(ctx, smtp_server, world, clock):
    from app.scheduler import lease

    lease.acquire("host:1:abc", now=server_time.database_now() - timedelta(minutes=10))
    incidents.evaluate(clock.now)
    run_alert_jobs()
    [(recipients, message)] = smtp_server.messages()
    assert recipients == [world.support]
    assert message["Subject"] == "[i-Reserve] Alert: Scheduler not running – installation"
    assert "https://portal.test/incidents" in message.get_content()


def test_smtp_login_is_used_when_configured(ctx, smtp_server, world, clock, app):
    app.config.update(SMTP_USERNAME=SMTP_USER, SMTP_PASSWORD=SMTP_SECRET)
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    assert set(run_alert_jobs().values()) == {"sent"}
    assert len(smtp_server.messages()) == 1


def test_a_refused_smtp_login_parks_the_job_at_once(ctx, smtp_server, world, clock, app):
    app.config.update(SMTP_USERNAME=SMTP_USER, SMTP_PASSWORD="wrong")
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    assert set(run_alert_jobs().values()) == {JOB_FAILED}
    parked = db.session.scalar(select(Job).where(Job.kind == delivery.SEND_ALERT))
    assert parked.last_error == "DeliveryFailed: The mail server refused SMTP_USERNAME and SMTP_PASSWORD."
    assert SMTP_SECRET not in parked.last_error and "wrong" not in parked.last_error
    assert smtp_server.messages() == []


def test_an_unreachable_mail_server_is_retried_by_the_queue(ctx, world, clock, app):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_TLS="none")
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    assert set(run_alert_jobs().values()) == {JOB_QUEUED}
    job = db.session.scalar(select(Job).where(Job.kind == delivery.SEND_ALERT))
    assert job.attempts == 1 and job.run_at > clock.now and "unavailable" in job.last_error


def test_without_smtp_settings_no_mail_is_queued(ctx, world, clock):
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    assert alert_jobs() == []


# -- the alert webhook -----------------------------------------------------------------


def test_the_webhook_receives_the_incident_as_json(ctx, world, clock, mocked):
    set_webhook(world.a.org, HOOK_A)
    integration = break_integration(world, "a")
    incidents.evaluate(clock.now)
    incident = only_open(rules.NEEDS_RECONNECT)
    expected = {
        "id": incident.id,
        "type": "needs_reconnect",
        "title": "Integration needs reconnecting",
        "severity": "critical",
        "state": "opened",
        "organisation": {"id": world.a.org, "name": "Alpha Rooms"},
        "integration": {"id": integration.id, "name": "Rooms A"},
        "link": None,
        "message": incident.message,
        "opened_at": "2026-11-25T12:00:00Z",
        "resolved_at": None,
        "acknowledged_at": None,
        "url": f"https://portal.test/orgs/{world.a.org}/incidents",
    }
    mocked.post(HOOK_A, json={}, match=[matchers.json_params_matcher(expected)])
    assert run_alert_jobs() == {f"{incident.id}:opened:webhook": "sent"}
    assert mocked.calls[0].request.headers["User-Agent"].startswith("i-Reserve-alerts")

    integration.connection_state = CONNECTION_CONNECTED
    db.session.commit()
    clock.advance(timedelta(hours=1))
    incidents.evaluate(clock.now)
    resolved = {**expected, "state": "resolved", "resolved_at": "2026-11-25T13:00:00Z"}
    mocked.post(HOOK_A, status=204, match=[matchers.json_params_matcher(resolved)])
    assert run_alert_jobs() == {f"{incident.id}:resolved:webhook": "sent"}


def test_a_calendar_incident_names_the_calendar(ctx, world, clock, mocked):
    set_webhook(world.a.org, HOOK_A)
    link = make_room_link(world)
    link.last_sync_status, link.consecutive_failures, link.last_sync_error = "error", 7, "Access is denied."
    db.session.commit()
    incidents.evaluate(clock.now)
    mocked.post(HOOK_A)
    run_alert_jobs()
    body = json.loads(mocked.calls[0].request.body)
    assert body["type"] == "link_failing"
    assert body["link"] == {"id": link.id, "mailbox": "room-a@contoso.example"}


def test_each_organisation_hears_only_of_its_own_incidents(ctx, world, clock, mocked, smtp_server):
    set_webhook(world.a.org, HOOK_A)
    set_webhook(world.b.org, HOOK_B)
    break_integration(world, "a")
    break_integration(world, "b")
    incidents.evaluate(clock.now)
    mocked.post(HOOK_A)
    mocked.post(HOOK_B)
    run_alert_jobs()

    sent = {call.request.url: json.loads(call.request.body)["organisation"]["name"] for call in mocked.calls}
    assert sent == {HOOK_A: "Alpha Rooms", HOOK_B: "Beta Halls"}
    for recipients, message in smtp_server.messages():
        if "Alpha Rooms" in message["Subject"]:
            assert world.b.admin not in recipients
        else:
            assert world.a.admin not in recipients


def test_a_failing_webhook_is_retried_and_a_refusing_one_is_parked(ctx, world, clock, mocked):
    set_webhook(world.a.org, HOOK_A)
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    mocked.post(HOOK_A, status=503, headers={"Retry-After": "120"})
    [(key, state)] = run_alert_jobs().items()
    assert state == JOB_QUEUED
    job = db.session.scalar(select(Job).where(Job.kind == delivery.SEND_ALERT))
    assert job.run_at >= clock.now + timedelta(seconds=120)
    assert job.last_error == "DeliveryFailed: The alert webhook answered 503."
    assert "secret-a" not in job.last_error

    mocked.post(HOOK_A, status=404)
    assert run_alert_jobs(now=job.run_at) == {key: JOB_FAILED}


def test_a_redirecting_webhook_is_not_followed(ctx, world, clock, mocked):
    set_webhook(world.a.org, HOOK_A)
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    mocked.post(HOOK_A, status=302, headers={"Location": "http://169.254.169.254/"})
    assert set(run_alert_jobs().values()) == {JOB_FAILED}


def test_a_webhook_removed_before_the_job_runs_sends_nothing(ctx, world, clock, mocked):
    set_webhook(world.a.org, HOOK_A)
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    set_webhook(world.a.org, None)
    assert set(run_alert_jobs().values()) == {"sent"}
    assert len(mocked.calls) == 0


def test_an_incident_deleted_with_its_organisation_sends_nothing(ctx, world, clock, mocked):
    set_webhook(world.a.org, HOOK_A)
    break_integration(world, "a")
    incidents.evaluate(clock.now)
    db.session.execute(db.delete(Incident))
    db.session.commit()
    assert set(run_alert_jobs().values()) == {"sent"}
    assert queue.state_counts()["failed"] == 0
