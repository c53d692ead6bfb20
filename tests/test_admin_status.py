"""The status dashboard, the sync log, job retries, the audit log and support's overview."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from app.database import server_time
from app.extensions import db
from app.models import AuditEntry, Booking, Integration, Job, OAuthToken, SyncLogEntry
from app.models.job import JOB_FAILED, JOB_QUEUED
from app.scheduler import lease
from tests.admin_helpers import add_rooms_integration, audit_entries, count
from tests.test_portal import integration_data

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def text_of(response):
    """The page as text: tags dropped, white space folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def stat_group(response, group_id):
    page = response.get_data(as_text=True)
    start = page.index(">", page.index(f'id="{group_id}"')) + 1
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page[start : page.index("</div>", start)]))


def parked(kind, key, error="GraphThrottled: Too many requests (429)", failed_at=NOW):
    job = Job(
        kind=kind,
        key=str(key),
        state=JOB_FAILED,
        run_at=NOW,
        attempts=8,
        created_at=NOW,
        failed_at=failed_at,
        last_error=error,
    )
    db.session.add(job)
    db.session.flush()
    return job.id


@pytest.fixture
def rooms(app, world, clock):
    with app.app_context():
        return add_rooms_integration(
            world.a,
            [
                dict(mailbox="ok-1@alpha.example", last_sync_status="ok", last_sync_at=NOW - timedelta(minutes=3)),
                dict(mailbox="ok-2@alpha.example", last_sync_status="ok", last_sync_at=NOW - timedelta(hours=1)),
                dict(mailbox="bad@alpha.example", last_sync_status="error", last_sync_error="Boom"),
                dict(mailbox="sub@alpha.example", last_sync_status="ok", subscription_error="Validation failed"),
                dict(mailbox="new@alpha.example"),
                dict(mailbox="off@alpha.example", enabled=False, last_sync_status="error"),
            ],
        )


# --- The dashboard -----------------------------------------------------------------------


def test_the_dashboard_counts_calendars_by_health(login, world, rooms):
    response = login(world.a.admin).get(rooms.base)
    assert stat_group(response, "calendar-health") == (
        " Rooms 6 in total 2 healthy 2 failing 1 never synced 1 disabled Last sync: 3 minutes ago "
    )
    assert "6 room mailbox(es), 1 disabled." in text_of(response)


def test_the_dashboard_counts_bookings_of_the_last_24_hours_from_the_sync_log(app, login, world, rooms):
    with app.app_context():
        other = add_rooms_integration(world.a, name="Other")
        link = rooms.links["ok-1@alpha.example"]

        def log(action, age, integration_id=rooms.id, direction="inbound"):
            db.session.add(
                SyncLogEntry(
                    organisation_id=world.a.org,
                    integration_id=integration_id,
                    link_id=link,
                    action=action,
                    direction=direction,
                    created_at=NOW - age,
                )
            )

        for age in (timedelta(minutes=1), timedelta(hours=23, minutes=59)):
            log("create", age)
        log("update", timedelta(hours=2))
        log("cancel", timedelta(hours=5))
        log("create", timedelta(hours=24, minutes=1))  # too old
        log("create", timedelta(hours=1), integration_id=other.id)  # another integration
        log("create", timedelta(hours=1), direction="outbound")  # an Outlook entry, not a booking
        log("skip", timedelta(hours=1))
        log("refuse", timedelta(hours=1))
        db.session.commit()
    response = login(world.a.admin).get(rooms.base)
    assert stat_group(response, "booking-activity") == " Bookings last 24 hours 2 created 1 updated 1 cancelled "


def test_the_dashboard_shows_this_integrations_jobs_and_retries_a_failed_one(app, login, world, rooms):
    with app.app_context():
        other = add_rooms_integration(world.a, ["elsewhere@alpha.example"], name="Other")
        bad = rooms.links["bad@alpha.example"]
        mine = parked("sync_link", bad, error="GraphAccessDenied: Access is denied.")
        parked("subscribe_link", rooms.links["sub@alpha.example"], failed_at=NOW - timedelta(hours=1))
        foreign = parked("sync_link", other.links["elsewhere@alpha.example"])
        db.session.add(Job(kind="sync_link", key=str(rooms.links["new@alpha.example"]), run_at=NOW, created_at=NOW))
        db.session.add(Job(kind="outbound_booking", key="1:1", run_at=NOW, created_at=NOW))
        db.session.commit()
    client = login(world.a.admin)
    response = client.get(rooms.base)
    assert stat_group(response, "job-figures") == " Jobs 1 queued 0 running 2 failed "
    page = response.get_data(as_text=True)
    row = page[page.index(f'id="job-{mine}"') :]
    row = row[: row.index("</tr>")]
    assert "bad@alpha.example" in row and "GraphAccessDenied: Access is denied." in row
    assert f'action="{rooms.base}/jobs/{mine}/retry"' in row
    assert f'id="job-{foreign}"' not in page

    # Another integration's job cannot be retried through this one.
    assert client.post(f"{rooms.base}/jobs/{foreign}/retry").status_code == 404
    assert client.post(f"{rooms.base}/jobs/999999/retry").status_code == 404
    response = client.post(f"{rooms.base}/jobs/{mine}/retry", follow_redirects=True)
    assert "The job is queued again." in response.get_data(as_text=True)
    with app.app_context():
        job = db.session.get(Job, mine)
        assert (job.state, job.attempts) == (JOB_QUEUED, 0)
        assert db.session.get(Job, foreign).state == JOB_FAILED
        assert audit_entries() == [("job_retried", f"sync job {mine} of calendar {bad}.", world.a.admin)]
    # A second press finds nothing parked.
    response = client.post(f"{rooms.base}/jobs/{mine}/retry", follow_redirects=True)
    assert "queued or running already" in response.get_data(as_text=True)
    with app.app_context():
        assert count(AuditEntry) == 1


def test_jobs_of_other_kinds_cannot_be_retried_through_an_integration(app, login, world, rooms):
    with app.app_context():
        # Its key happens to look like one of this integration's link ids.
        stranger = parked("outbound_booking", rooms.links["bad@alpha.example"])
        db.session.commit()
    assert login(world.a.admin).post(f"{rooms.base}/jobs/{stranger}/retry").status_code == 404


def test_the_scheduler_heartbeat_names_the_holder_to_support_or_says_missing(app, login, world, rooms):
    client = login(world.support)
    assert "missing" in stat_group(client.get(rooms.base), "scheduler")
    with app.app_context():
        assert lease.acquire("web-1:4242:abc123", ttl=60)
    alive = stat_group(client.get(rooms.base), "scheduler")
    assert "running on web-1:4242:abc123" in alive and "Last tick" in alive and "missing" not in alive
    with app.app_context():
        lease.release("web-1:4242:abc123")
        assert lease.acquire("web-2:7:def456", now=server_time.database_now() - timedelta(minutes=10), ttl=60)
    expired = stat_group(client.get(rooms.base), "scheduler")
    assert "missing" in expired and "web-2:7:def456" in expired


def test_a_customer_admin_sees_the_scheduler_state_but_no_worker_id(app, login, world, rooms):
    client = login(world.a.admin)
    with app.app_context():
        assert lease.acquire("web-1:4242:abc123", ttl=60)
    alive = client.get(rooms.base).get_data(as_text=True)
    assert "running" in stat_group(client.get(rooms.base), "scheduler") and "web-1:4242:abc123" not in alive
    with app.app_context():
        lease.release("web-1:4242:abc123")
        assert lease.acquire("web-2:7:def456", now=server_time.database_now() - timedelta(minutes=10), ttl=60)
    expired = client.get(rooms.base).get_data(as_text=True)
    assert "No process holds the scheduler lease" in expired and "web-2:7:def456" not in expired


def test_a_delegated_integration_that_needs_reconnect_says_why_and_offers_the_button(app, login, world, clock):
    with app.app_context():
        integration = add_rooms_integration(
            world.a,
            auth_mode="delegated",
            object_id=world.a.object,
            connection_state="needs_reconnect",
            connection_error="The refresh token has expired (AADSTS700082)",
        )
    page = login(world.a.admin).get(integration.base).get_data(as_text=True)
    assert "needs reconnect" in page and "Microsoft no longer accepts the sign-in" in page
    assert "sign in with Microsoft again" in page
    assert "<code>The refresh token has expired (AADSTS700082)</code>" in page.split("Details for support")[1]
    assert f'action="{integration.base}/connect"' in page and "Reconnect with Microsoft" in page


def test_a_connected_delegated_integration_shows_its_account_and_token_expiry(app, login, world, clock):
    with app.app_context():
        integration = add_rooms_integration(
            world.a, auth_mode="delegated", object_id=world.a.object, connected_account="desk@alpha.example"
        )
        row = db.session.get(Integration, integration.id)
        row.token = OAuthToken(access_token="a", refresh_token="r", expires_at=NOW + timedelta(minutes=50))
        db.session.commit()
    page = text_of(login(world.a.admin).get(integration.base))
    assert "connected as <desk@alpha.example>" in page.replace("&lt;", "<").replace("&gt;", ">")
    assert "Access token valid until 2026-11-25 13:50 (Europe/Amsterdam)" in page


def test_disconnecting_asks_for_confirmation_on_its_own_page(login, world, rooms):
    client = login(world.a.admin)
    page = client.get(rooms.base).get_data(as_text=True)
    assert f'href="{rooms.base}/disconnect/confirm"' in page and "confirm(" not in page
    confirm = client.get(rooms.base + "/disconnect/confirm").get_data(as_text=True)
    assert "Disconnect Meeting rooms from Microsoft?" in confirm
    assert f'<form method="post" action="{rooms.base}/disconnect"' in confirm


# --- The sync log ------------------------------------------------------------------------


@pytest.fixture
def log_lines(app, world, rooms):
    with app.app_context():
        booking = Booking(
            organisation_id=world.a.org,
            object_id=world.a.object,
            status_id=world.a.statuses["Confirmed"],
            start_at=NOW,
            end_at=NOW + timedelta(hours=1),
        )
        db.session.add(booking)
        db.session.flush()
        ok, bad = rooms.links["ok-1@alpha.example"], rooms.links["bad@alpha.example"]
        for minute in range(60):
            db.session.add(
                SyncLogEntry(
                    organisation_id=world.a.org,
                    integration_id=rooms.id,
                    link_id=ok,
                    action="skip",
                    reason=f"unchanged {minute}",
                    created_at=NOW - timedelta(minutes=minute + 10),
                )
            )
        db.session.add(
            SyncLogEntry(
                organisation_id=world.a.org,
                integration_id=rooms.id,
                link_id=ok,
                booking_id=booking.id,
                action="create",
                reason="New appointment",
                created_at=NOW - timedelta(minutes=1),
            )
        )
        db.session.add(
            SyncLogEntry(
                organisation_id=world.a.org,
                integration_id=rooms.id,
                link_id=bad,
                action="error",
                reason="GraphAccessDenied",
                is_error=True,
                created_at=NOW - timedelta(minutes=2),
            )
        )
        db.session.commit()
        return booking.id


def log_reasons(response):
    """The reason column; for an error line the text as recorded, which the page keeps under its explanation."""
    cells = re.findall(r"<td class=\"(?:error-cell)?\">(.*?)</td>\s*</tr>", response.get_data(as_text=True), re.S)
    return [recorded_error(cell) or cell for cell in cells]


def recorded_error(cell):
    found = re.search(r"<details class=\"error-details\">.*?<dt>As recorded</dt><dd><code>([^<]*)</code>", cell, re.S)
    return found.group(1) if found else None


def test_the_sync_log_is_newest_first_with_booking_links_and_local_times(login, world, rooms, log_lines):
    response = login(world.a.admin).get(rooms.base + "/log")
    page = response.get_data(as_text=True)
    assert log_reasons(response)[:3] == ["New appointment", "GraphAccessDenied", "unchanged 0"]
    assert len(log_reasons(response)) == 50
    assert f'href="/orgs/{world.a.org}/bookings/{log_lines}/edit">#{log_lines}</a>' in page
    assert "2026-11-25 12:59:00" in page  # 11:59 UTC in Amsterdam
    assert "Page 1 of 2 · 62 lines" in page
    second = login(world.a.admin).get(rooms.base + "/log?page=2")
    assert len(log_reasons(second)) == 12


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?action=create", ["New appointment"]),
        ("?only_errors=y", ["GraphAccessDenied"]),
        ("?room=BAD", ["GraphAccessDenied"]),
        ("?room=BAD&action=skip", []),
    ],
)
def test_the_sync_log_filters_by_room_action_and_errors(login, world, rooms, log_lines, query, expected):
    query = query.replace("BAD", str(rooms.links["bad@alpha.example"]))
    response = login(world.a.admin).get(rooms.base + "/log" + query)
    assert log_reasons(response) == expected


def test_the_sync_log_offers_only_this_integrations_calendars(app, login, world, rooms, log_lines):
    with app.app_context():
        other = add_rooms_integration(world.a, ["elsewhere@alpha.example"], name="Other")
    page = login(world.a.admin).get(rooms.base + "/log").get_data(as_text=True)
    assert "elsewhere@alpha.example" not in page
    response = login(world.a.admin).get(f"{rooms.base}/log?room={other.links['elsewhere@alpha.example']}")
    assert "Calendar: Not a valid choice." in response.get_data(as_text=True)


# --- The audit log -----------------------------------------------------------------------


def test_saving_settings_records_what_changed_but_never_the_secret(app, login, world):
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/integrations/new", data=integration_data(world))
    with app.app_context():
        integration_id = db.session.scalar(db.select(Integration.id))
    base = f"/orgs/{world.a.org}/integrations/{integration_id}"
    client.post(
        base + "/edit",
        data=integration_data(
            world,
            client_secret="a-brand-new-secret-value",
            teams_meeting="",
            window_future_days="200",
            lock_status_ids=[world.a.statuses["Invoiced"], world.a.statuses["Option"]],
            cancel_status_id=0,
        ),
    )
    client.post(base + "/edit", data=integration_data(world, client_secret=""))  # back to the start, same secret
    client.post(base + "/edit", data=integration_data(world, client_secret=""))  # nothing changes
    with app.app_context():
        entries = audit_entries(integration_id)
    assert [action for action, _, _ in entries] == ["integration_created", "settings_saved", "settings_saved"]
    assert entries[0][1] == "Meeting rooms, delegated method, client secret set."
    assert entries[1][1] == (
        "Cancel status: Cancelled → none; Lock statuses: Invoiced → Invoiced, Option; "
        "Teams meeting: yes → no; Days in the future: 180 → 200; client secret replaced."
    )
    assert "client secret" not in entries[2][1]
    for _, detail, who in entries:
        assert "the-client-secret-value" not in detail and "a-brand-new-secret-value" not in detail
        assert who == world.a.admin
    page = client.get(base + "/audit").get_data(as_text=True)
    assert page.index("Lock statuses: Invoiced → Invoiced") < page.index("Meeting rooms, delegated method")
    assert "a-brand-new-secret-value" not in page


def test_the_audit_log_is_paginated_per_integration_and_per_organisation(app, login, world, clock):
    with app.app_context():
        first = add_rooms_integration(world.a, name="First")
        second = add_rooms_integration(world.a, name="Second")
        for n in range(55):
            db.session.add(
                AuditEntry(
                    organisation_id=world.a.org,
                    integration_id=first.id,
                    user_email="x@alpha.example",
                    action="room_added",
                    detail=f"room-{n:02d}",
                    created_at=NOW - timedelta(minutes=60 - n),
                )
            )
        db.session.add(
            AuditEntry(
                organisation_id=world.a.org,
                integration_id=second.id,
                user_email="y@alpha.example",
                action="connected",
                detail="second's entry",
                created_at=NOW,
            )
        )
        db.session.commit()
    client = login(world.a.admin)
    page = client.get(first.base + "/audit").get_data(as_text=True)
    details = re.findall(r'<td class="detail">([^<]*)</td>', page)
    assert details[:2] == ["room-54", "room-53"] and len(details) == 50
    assert "second&#39;s entry" not in page and "Page 1 of 2 · 55 entries" in page
    assert (
        re.findall(r'<td class="detail">([^<]*)</td>', client.get(first.base + "/audit?page=2").get_data(as_text=True))[
            -1
        ]
        == "room-00"
    )
    organisation_page = client.get(f"/orgs/{world.a.org}/audit").get_data(as_text=True)
    assert re.findall(r'<td class="detail">([^<]*)</td>', organisation_page)[:2] == ["second&#39;s entry", "room-54"]
    assert "Page 1 of 2 · 56 entries" in organisation_page and ">Second</a>" in organisation_page


# --- Support's overview ------------------------------------------------------------------


def test_the_overview_lists_every_integration_broken_ones_first(app, login, world, clock):
    with app.app_context():
        fine = add_rooms_integration(world.a, [dict(mailbox="a@alpha.example", last_sync_status="ok")], name="Fine")
        jobs = add_rooms_integration(world.b, ["j@beta.example"], name="With failed job")
        parked("sync_link", jobs.links["j@beta.example"])
        failing = add_rooms_integration(
            world.b,
            [dict(mailbox=f"f{n}@beta.example", last_sync_status="error") for n in range(2)],
            name="Failing rooms",
        )
        reconnect = add_rooms_integration(
            world.a,
            auth_mode="delegated",
            connection_state="needs_reconnect",
            name="Front desk",
            connection_error="Consent was revoked (AADSTS65001)",
        )
        db.session.commit()
    response = login(world.support).get("/support/integrations")
    page = response.get_data(as_text=True)
    order = [int(i) for i in re.findall(r'<tr class="trouble-\d" id="integration-(\d+)">', page)]
    assert order == [reconnect.id, failing.id, jobs.id, fine.id]
    assert "4 integration(s) across all organisations; 3 need attention." in text_of(response)
    row = page[page.index(">", page.index(f'id="integration-{failing.id}"')) + 1 :]
    row = text_of_fragment(row[: row.index("</tr>")])
    assert row == " Beta Halls Failing rooms application connected 2 2 never 0 0 0 syncs ok, 0 failed in 7 days "
    assert "Consent was revoked (AADSTS65001)" in page


def text_of_fragment(fragment):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))


def test_the_overview_is_for_support_only(login, world):
    assert login(world.a.admin).get("/support/integrations").status_code == 404
    assert "Integrations overview" not in login(world.a.admin).get(f"/orgs/{world.a.org}").get_data(as_text=True)


# --- Connecting and disconnecting are audited --------------------------------------------


def test_connecting_and_disconnecting_are_recorded(app, login, world, mocked):
    from tests.test_oauth_delegated import CALLBACK, add_integration, register_code_exchange, start_connect

    with app.app_context():
        integration_id = add_integration(world)
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    register_code_exchange(mocked)
    assert client.get(CALLBACK, query_string={"code": "code-1", "state": params["state"]}).status_code == 302
    client.post(f"/orgs/{world.a.org}/integrations/{integration_id}/disconnect")
    with app.app_context():
        assert audit_entries(integration_id) == [
            ("connected", "Connected as Front.Desk@alpha.example.", world.a.admin),
            ("disconnected", "The stored tokens were deleted.", world.a.admin),
        ]


def test_a_failed_sign_in_is_recorded_with_its_reason_and_nothing_else(app, login, world, mocked):
    from tests.test_oauth_delegated import CALLBACK, add_integration, start_connect

    with app.app_context():
        integration_id = add_integration(world)
    client = login(world.a.admin)
    params = start_connect(client, world, integration_id)
    client.get(CALLBACK, query_string={"error": "access_denied", "state": params["state"]})
    with app.app_context():
        assert audit_entries() == [("sign_in_failed", "Access was denied at sign-in.", "admin@a.example")]
