"""Incident pages and partials: each admin sees and acknowledges only their own organisation's."""

from datetime import timedelta

import pytest
from flask import render_template_string
from flask_login import login_user
from sqlalchemy import select

from app.alerts import rules
from app.database import server_time
from app.extensions import db
from app.models import Incident, Organisation, User
from app.models.incident import SUBJECT_INSTALLATION
from app.scheduler import lease
from tests.alert_helpers import install_fake_dns

TEMPLATE_BANNER = (
    "{% with incidents = open_incidents(integration_id=integration_id) %}"
    '{% include "alerts/_banner.html" %}{% endwith %}'
)
TEMPLATE_OVERVIEW = '{% with incidents = open_incidents() %}{% include "alerts/_overview.html" %}{% endwith %}'


def add_incident(clock, organisation_id, kind=rules.NEEDS_RECONNECT, subject=None, **fields):
    incident = Incident(
        organisation_id=organisation_id,
        kind=kind,
        subject=subject or f"integration:{organisation_id}-{kind}",
        severity=fields.pop("severity", "critical"),
        message=fields.pop("message", f"Trouble in organisation {organisation_id}."),
        opened_at=clock.now,
        last_notified_at=clock.now,
        **fields,
    )
    db.session.add(incident)
    db.session.commit()
    return incident.id


@pytest.fixture
def rows(app, world, clock):
    with app.app_context():
        return {
            "a": add_incident(
                clock, world.a.org, message="Alpha's integration needs reconnecting.", integration_name="Rooms A"
            ),
            "b": add_incident(clock, world.b.org, message="Beta's integration needs reconnecting."),
            "installation": add_incident(
                clock, None, rules.SCHEDULER_DOWN, SUBJECT_INSTALLATION, message="The scheduler has not run."
            ),
        }


def test_an_admin_sees_the_incidents_of_their_own_organisation(login, world, rows):
    page = login(world.a.admin).get(f"/orgs/{world.a.org}/incidents").get_data(as_text=True)
    assert "Alpha&#39;s integration needs reconnecting." in page
    assert "Beta" not in page and "scheduler has not run" not in page
    assert "Acknowledge" in page


def test_an_admin_gets_404_for_another_organisations_incidents(login, world, rows, app):
    client = login(world.a.admin)
    assert client.get(f"/orgs/{world.b.org}/incidents").status_code == 404
    assert client.post(f"/orgs/{world.b.org}/incidents/{rows['b']}/acknowledge").status_code == 404
    assert client.post(f"/orgs/{world.a.org}/incidents/{rows['b']}/acknowledge").status_code == 404
    assert client.post(f"/orgs/{world.a.org}/incidents/{rows['installation']}/acknowledge").status_code == 404
    assert client.get("/incidents").status_code == 404
    assert client.post(f"/incidents/{rows['b']}/acknowledge").status_code == 404
    with app.app_context():
        assert db.session.get(Incident, rows["b"]).acknowledged_at is None


def test_an_admin_acknowledges_an_incident_once(login, world, rows, app, clock):
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/incidents/{rows['a']}/acknowledge", data={"next": f"/orgs/{world.a.org}/integrations/1"}
    )
    assert response.status_code == 302 and response.headers["Location"] == f"/orgs/{world.a.org}/integrations/1"
    with app.app_context():
        incident = db.session.get(Incident, rows["a"])
        assert (incident.acknowledged_by, incident.acknowledged_at) == (world.a.admin, clock.now)

    again = client.post(f"/orgs/{world.a.org}/incidents/{rows['a']}/acknowledge", follow_redirects=True)
    assert f"acknowledged already by {world.a.admin}" in again.get_data(as_text=True)
    page = client.get(f"/orgs/{world.a.org}/incidents").get_data(as_text=True)
    assert f"Acknowledged by {world.a.admin}" in page


def test_acknowledging_returns_only_to_pages_of_this_site(login, world, rows):
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/incidents/{rows['a']}/acknowledge", data={"next": "//evil.example/phish"}
    )
    assert response.headers["Location"] == f"/orgs/{world.a.org}/incidents"


def test_a_resolved_incident_cannot_be_acknowledged(login, world, rows, app, clock):
    with app.app_context():
        db.session.get(Incident, rows["a"]).resolved_at = clock.now
        db.session.commit()
    client = login(world.a.admin)
    page = client.post(f"/orgs/{world.a.org}/incidents/{rows['a']}/acknowledge", follow_redirects=True)
    assert "resolved already" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Incident, rows["a"]).acknowledged_at is None


def test_support_sees_every_incident_and_acknowledges_any(login, world, rows, app):
    client = login(world.support)
    page = client.get("/incidents").get_data(as_text=True)
    for text in ("Alpha&#39;s integration", "Beta&#39;s integration", "The scheduler has not run."):
        assert text in page
    assert client.post(f"/incidents/{rows['installation']}/acknowledge").status_code == 302
    assert client.post(f"/orgs/{world.b.org}/incidents/{rows['b']}/acknowledge").status_code == 302
    with app.app_context():
        assert db.session.get(Incident, rows["installation"]).acknowledged_by == world.support
        assert db.session.get(Incident, rows["b"]).acknowledged_by == world.support


def test_the_list_keeps_history_and_pages_through_it(login, world, app, clock):
    with app.app_context():
        for number in range(55):
            add_incident(
                clock, world.a.org, subject=f"integration:{number}", resolved_at=clock.now, message=f"Old {number}."
            )
            clock.advance(timedelta(minutes=1))
        open_id = add_incident(clock, world.a.org, subject="integration:open", message="Still going.")
    client = login(world.a.admin)
    first = client.get(f"/orgs/{world.a.org}/incidents").get_data(as_text=True)
    assert first.index("Still going.") < first.index("Old 54."), "open incidents come first"
    assert f'id="incident-{open_id}"' in first and "Page 1 of 2" in first
    second = client.get(f"/orgs/{world.a.org}/incidents?page=2").get_data(as_text=True)
    assert "Old 0." in second and "resolved" in second


def test_the_list_says_when_email_is_off_and_whether_a_webhook_is_set(login, world, app):
    client = login(world.a.admin)
    page = client.get(f"/orgs/{world.a.org}/incidents").get_data(as_text=True)
    assert 'id="alert-email-off"' in page and "No alert webhook is set." in page
    with app.app_context():
        db.session.get(Organisation, world.a.org).alert_webhook_url = "https://hooks.alpha.example/x"
        db.session.commit()
    app.config["SMTP_HOST"] = "127.0.0.1"
    page = client.get(f"/orgs/{world.a.org}/incidents").get_data(as_text=True)
    assert 'id="alert-email-off"' not in page and "also sent to this organisation's alert webhook" in page


# -- partials --------------------------------------------------------------------------


def render_as(app, email, template, **context):
    with app.test_request_context("/"):
        login_user(db.session.scalar(select(User).where(User.email == email)))
        return render_template_string(template, **context)


def test_the_banner_shows_an_integrations_open_incidents_to_its_own_admin_only(app, world, clock):
    with app.app_context():
        mine = add_incident(clock, world.a.org, subject="link:1", integration_id=None, message="Mine.")
        from tests.sync_helpers import make_room_link

        link = make_room_link(world)
        db.session.get(Incident, mine).integration_id = link.integration_id
        db.session.commit()
        add_incident(clock, world.b.org, subject="link:2", message="Theirs.")

        page = render_as(app, world.a.admin, TEMPLATE_BANNER, integration_id=link.integration_id)
        assert "Mine." in page and "Theirs." not in page and "Acknowledge" in page
        assert render_as(app, world.b.admin, TEMPLATE_BANNER, integration_id=link.integration_id).strip() == ""
        everything = render_as(app, world.a.admin, TEMPLATE_BANNER, integration_id=None)
        assert "Theirs." not in everything


def test_the_support_overview_partial_lists_open_incidents_and_a_stopped_scheduler(app, world, rows):
    with app.app_context():
        page = render_as(app, world.support, TEMPLATE_OVERVIEW)
        assert "Alpha&#39;s integration" in page and "Beta&#39;s integration" in page
        assert "has never run" in page and 'id="alert-email-off"' in page

        lease.acquire("host:1:abc", now=server_time.database_now() - timedelta(minutes=7))
        page = render_as(app, world.support, TEMPLATE_OVERVIEW)
        assert "Background processing has not run for 7 minutes" in page

        lease.acquire("host:1:abc")
        assert "scheduler-heartbeat" not in render_as(app, world.support, TEMPLATE_OVERVIEW)


def test_a_stopped_scheduler_shows_on_the_banner_for_admins_too(app, world):
    with app.app_context():
        assert "scheduler-heartbeat" not in render_as(app, world.a.admin, TEMPLATE_BANNER, integration_id=1)
        lease.acquire("host:1:abc", now=server_time.database_now() - timedelta(minutes=30))
        page = render_as(app, world.a.admin, TEMPLATE_BANNER, integration_id=1)
        assert "Background processing has not run for 30 minutes" in page and "SCHEDULER_ENABLED" not in page


# -- the organisation's alert webhook --------------------------------------------------


@pytest.fixture
def dns(monkeypatch):
    """Saving a webhook resolves its host name; the test names resolve without real DNS."""
    return install_fake_dns(monkeypatch)


def test_an_admin_sets_and_clears_the_alert_webhook(login, world, app, dns):
    client = login(world.a.admin)
    form = {
        "name": "Alpha Rooms",
        "timezone": "Europe/Amsterdam",
        "alert_webhook_url": " https://hooks.alpha.example/a ",
    }
    assert client.post(f"/orgs/{world.a.org}/edit", data=form).status_code == 302
    with app.app_context():
        assert db.session.get(Organisation, world.a.org).alert_webhook_url == "https://hooks.alpha.example/a"
    assert client.post(f"/orgs/{world.a.org}/edit", data={**form, "alert_webhook_url": ""}).status_code == 302
    with app.app_context():
        assert db.session.get(Organisation, world.a.org).alert_webhook_url is None


@pytest.mark.parametrize("bad", ["ftp://hooks.example/a", "hooks.example/a", "https://", "https://exa mple.com/x"])
def test_a_bad_alert_webhook_is_refused_next_to_its_field(login, world, app, bad):
    client = login(world.a.admin)
    form = {"name": "Alpha Rooms", "timezone": "Europe/Amsterdam", "alert_webhook_url": bad}
    response = client.post(f"/orgs/{world.a.org}/edit", data=form)
    assert response.status_code == 200
    assert 'id="alert_webhook_url-error"' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Organisation, world.a.org).alert_webhook_url is None


def test_support_can_set_the_webhook_when_creating_an_organisation(login, world, app, dns):
    client = login(world.support)
    form = {"name": "Gamma", "timezone": "Europe/Amsterdam", "alert_webhook_url": "http://hooks.gamma.example/"}
    assert client.post("/orgs/new", data=form).status_code == 302
    with app.app_context():
        gamma = db.session.scalar(select(Organisation).where(Organisation.name == "Gamma"))
        assert gamma.alert_webhook_url == "http://hooks.gamma.example/"
