"""Sync health over time: hourly rollups counted where the work happens, charted on the status pages."""

import json
import re
import threading
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sql_event

from app.admin.health_chart import health_chart
from app.extensions import db
from app.graph.errors import GraphError
from app.jobs import retention
from app.metrics import hourly
from app.models import Booking, CalendarLink, Integration, Organisation, SyncHourly
from app.sync import engine
from app.sync.engine import sync_link
from tests.sync_helpers import at, delta_url, event, graph_client, make_room_link, page

ROOM = "room-a@contoso.example"
SECRET = "client-state-of-room-a-0123456789"


def rollups(integration_id):
    """{UTC hour: {counter: n}} of one integration, only the counters above zero."""
    rows = db.session.scalars(db.select(SyncHourly).where(SyncHourly.integration_id == integration_id))
    found = {}
    for row in rows:
        counts = {name: getattr(row, name) for name in hourly.COUNTERS if getattr(row, name)}
        found[row.hour] = counts
    return found


@pytest.fixture
def room(app, world):
    with app.app_context():
        link = make_room_link(world, upn=ROOM)
        link.subscription_id, link.subscription_client_state = "sub-a", SECRET
        db.session.commit()
        return link.id, link.integration_id


# -- counting ------------------------------------------------------------------------


def test_counts_in_one_hour_add_up_and_other_hours_are_kept_apart(app, room, clock):
    _, integration_id = room
    with app.app_context():
        hourly.count(integration_id, syncs_ok=1, notifications=2)
        db.session.commit()
        clock.advance(timedelta(minutes=40))  # 12:40, the same hour
        hourly.count(integration_id, syncs_ok=1, bookings_created=3)
        db.session.commit()
        clock.advance(timedelta(minutes=30))  # 13:10, the next hour
        hourly.count(integration_id, syncs_failed=1)
        db.session.commit()

        assert rollups(integration_id) == {
            datetime(2026, 11, 25, 12, tzinfo=UTC): {"syncs_ok": 2, "notifications": 2, "bookings_created": 3},
            datetime(2026, 11, 25, 13, tzinfo=UTC): {"syncs_failed": 1},
        }


def test_a_count_rolled_back_with_its_work_is_not_kept(app, room, clock):
    _, integration_id = room
    with app.app_context():
        hourly.count(integration_id, syncs_ok=1)
        db.session.rollback()
        assert rollups(integration_id) == {}


def test_a_count_for_an_integration_deleted_meanwhile_adds_nothing_and_does_not_fail(app, room, clock):
    _, integration_id = room
    with app.app_context():
        hourly.count_many({integration_id: {"notifications": 1}, integration_id + 1000: {"notifications": 4}})
        db.session.commit()
        assert db.session.scalar(db.select(db.func.sum(SyncHourly.notifications))) == 1


def test_an_unknown_counter_is_refused(app, room):
    _, integration_id = room
    with app.app_context(), pytest.raises(TypeError, match="bookings_moved"):
        hourly.count(integration_id, bookings_moved=1)


@pytest.mark.postgresql_only
def test_increments_from_two_sessions_at_once_are_all_kept(app, room):
    _, integration_id = room
    per_thread = 40
    start = threading.Barrier(2)
    failures = []

    def count_repeatedly():
        try:
            with app.app_context():
                start.wait()
                for _ in range(per_thread):
                    hourly.count(integration_id, syncs_ok=1, notifications=2)
                    db.session.commit()
                db.session.remove()
        except Exception as error:  # reported below, in the test's own thread
            failures.append(error)

    threads = [threading.Thread(target=count_repeatedly) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    with app.app_context():
        [row] = db.session.scalars(db.select(SyncHourly).where(SyncHourly.integration_id == integration_id))
        assert (row.syncs_ok, row.notifications) == (2 * per_thread, 4 * per_thread)


@pytest.mark.postgresql_only
def test_a_second_session_waits_for_the_first_and_adds_to_its_row(app, room):
    """The first count of an hour, still uncommitted, and a second one: the second updates, not fails."""
    _, integration_id = room
    first_counted, second_done, failures = threading.Event(), threading.Event(), []

    def second():
        with app.app_context():
            first_counted.wait(10)
            try:
                hourly.count(integration_id, syncs_failed=1)
                db.session.commit()
            except Exception as error:
                failures.append(error)
            finally:
                db.session.remove()
                second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with app.app_context():
        hourly.count(integration_id, syncs_ok=1)
        first_counted.set()
        assert not second_done.wait(0.5), "the second count waits on the first one's row"
        db.session.commit()
    thread.join(10)
    assert failures == []
    with app.app_context():
        [row] = db.session.scalars(db.select(SyncHourly).where(SyncHourly.integration_id == integration_id))
        assert (row.syncs_ok, row.syncs_failed) == (1, 1)


# -- where things are counted -----------------------------------------------------------


def test_a_sync_that_creates_two_bookings_counts_two_created_and_one_ok_run(app, room, mocked, clock):
    link_id, integration_id = room
    mocked.get(
        delta_url(ROOM),
        json=page(
            [event("ev-1", at(1, 9), at(1, 10)), event("ev-2", at(1, 11), at(1, 12))],
            delta_link=delta_url(ROOM) + "?$deltatoken=one",
        ),
    )
    with app.app_context():
        summary = sync_link(link_id, client=graph_client())
        assert summary.created == 2
        assert rollups(integration_id) == {clock.now: {"syncs_ok": 1, "bookings_created": 2}}


def test_a_sync_that_moves_and_cancels_bookings_counts_them(app, room, mocked, clock):
    link_id, integration_id = room
    mocked.get(
        delta_url(ROOM),
        json=page(
            [event("ev-1", at(1, 9), at(1, 10)), event("ev-2", at(1, 11), at(1, 12))],
            delta_link=delta_url(ROOM) + "?$deltatoken=one",
        ),
    )
    mocked.get(
        delta_url(ROOM) + "?$deltatoken=one",
        json=page(
            [
                event("ev-1", at(1, 13), at(1, 14)),
                event("ev-2", at(1, 11), at(1, 12), isCancelled=True),
            ],
            delta_link=delta_url(ROOM) + "?$deltatoken=two",
        ),
    )
    with app.app_context():
        sync_link(link_id, client=graph_client())
        clock.advance(timedelta(hours=1))
        sync_link(link_id, client=graph_client())
        assert rollups(integration_id)[clock.now] == {"syncs_ok": 1, "bookings_updated": 1, "bookings_cancelled": 1}


def test_a_failing_sync_counts_one_failed_run_and_nothing_else(app, room, mocked, clock):
    link_id, integration_id = room
    mocked.get(
        delta_url(ROOM), status=403, json={"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}}
    )
    with app.app_context():
        with pytest.raises(GraphError):
            sync_link(link_id, client=graph_client())
        assert rollups(integration_id) == {clock.now: {"syncs_failed": 1}}


def test_a_page_rolled_back_takes_its_counts_with_it_and_committed_pages_keep_theirs(
    app, room, mocked, clock, monkeypatch
):
    link_id, integration_id = room
    second_page = delta_url(ROOM) + "?$skiptoken=two"
    mocked.get(delta_url(ROOM), json=page([event("ev-1", at(1, 9), at(1, 10))], next_link=second_page))
    mocked.get(
        second_page,
        json=page(
            [event("ev-2", at(1, 11), at(1, 12)), event("ev-3", at(1, 13), at(1, 14))],
            delta_link=delta_url(ROOM) + "?$deltatoken=one",
        ),
    )
    real_commit = engine.commit_without_waiting_for_the_disk

    def commit_until_the_second_page():
        # The first commit after page two was read would store its bookings: it is lost with its work.
        if len(mocked.calls) == 2:
            raise RuntimeError("the database went away")
        real_commit()

    monkeypatch.setattr(engine, "commit_without_waiting_for_the_disk", commit_until_the_second_page)
    with app.app_context():
        with pytest.raises(RuntimeError):
            sync_link(link_id, client=graph_client())
        assert db.session.scalar(db.select(db.func.count(Booking.id))) == 1
        assert rollups(integration_id) == {clock.now: {"bookings_created": 1, "syncs_failed": 1}}


def post_notifications(client, items):
    return client.post("/webhooks/graph", data=json.dumps({"value": items}), content_type="application/json")


def notification(subscription_id="sub-a", client_state=SECRET):
    return {
        "subscriptionId": subscription_id,
        "clientState": client_state,
        "changeType": "updated",
        "resource": "Users/x/Events/y",
        "resourceData": {"id": "y"},
    }


def test_a_webhook_post_with_three_notifications_counts_three(app, client, room, clock):
    _, integration_id = room
    forged = notification(client_state="not-the-secret")
    response = post_notifications(client, [notification(), notification(), forged, notification()])
    assert response.status_code == 202
    with app.app_context():
        assert rollups(integration_id) == {clock.now: {"notifications": 3}}


def test_the_webhook_counts_a_batch_in_one_statement(app, client, room, clock):
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "sync_hourly" in statement:
            statements.append(statement)

    with app.app_context():
        sql_event.listen(db.engine, "before_cursor_execute", record)
        try:
            post_notifications(client, [notification()] * 5)
        finally:
            sql_event.remove(db.engine, "before_cursor_execute", record)
    assert len(statements) == 1


# -- retention ------------------------------------------------------------------------


def test_the_daily_prune_deletes_rollups_older_than_35_days(app, room, clock):
    _, integration_id = room
    with app.app_context():
        for days in (36, 35, 34, 1):
            hourly.count(integration_id, now=clock.now - timedelta(days=days), syncs_ok=days)
        db.session.commit()

        deleted = retention.prune_history(clock.now)

        assert deleted["sync_hourly"] == 1
        assert sorted(counts["syncs_ok"] for counts in rollups(integration_id).values()) == [1, 34, 35]


# -- the status page's chart ----------------------------------------------------------


def chart_of(html):
    """The health chart's SVG element, parsed."""
    match = re.search(r"<svg class=\"health-svg\".*?</svg>", html, re.S)
    assert match, "the status page shows the health chart"
    return ElementTree.fromstring(match.group(0))


def hour_slots(svg, panel):
    panel_group = svg.find(f".//g[@id='health-panel-{panel}']")
    return {slot.get("data-hour"): slot for slot in panel_group.findall("g[@class='health-hour']")}


def bar_height(slot, css_class):
    """The height of the hour's bar of one series; an hour without any draws no bar, height 0."""
    bars = [rect for rect in slot.iter("rect") if rect.get("class") == f"bar-{css_class}"]
    assert len(bars) <= 1
    return float(bars[0].get("height")) if bars else 0


def status_page(client, world, integration_id):
    response = client.get(f"/orgs/{world.a.org}/integrations/{integration_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_status_page_charts_168_hours_with_bars_where_something_happened(app, login, world, room, clock):
    _, integration_id = room
    with app.app_context():
        db.session.get(Organisation, world.a.org).timezone = "America/New_York"
        hourly.count(integration_id, now=datetime(2026, 11, 25, 3, 20, tzinfo=UTC), syncs_ok=2, syncs_failed=2)
        hourly.count(integration_id, now=datetime(2026, 11, 24, 9, tzinfo=UTC), syncs_ok=4, notifications=7)
        hourly.count(integration_id, now=datetime(2026, 11, 10, 9, tzinfo=UTC), syncs_ok=100)  # before the 7 days
        db.session.commit()

    html = status_page(login(world.a.admin), world, integration_id)
    svg = chart_of(html)

    syncs = hour_slots(svg, 1)
    assert len(syncs) == 168
    assert min(syncs) == "2026-11-18T13:00Z" and max(syncs) == "2026-11-25T12:00Z"
    # The busiest hour fills the panel; half its runs failed, so the two bars are equal.
    assert bar_height(syncs["2026-11-24T09:00Z"], "ok") == 56
    assert bar_height(syncs["2026-11-24T09:00Z"], "failed") == 0
    assert bar_height(syncs["2026-11-25T03:00Z"], "ok") == bar_height(syncs["2026-11-25T03:00Z"], "failed") == 28
    assert bar_height(syncs["2026-11-25T04:00Z"], "ok") == bar_height(syncs["2026-11-25T04:00Z"], "failed") == 0
    assert bar_height(hour_slots(svg, 2)["2026-11-24T09:00Z"], "notified") == 56
    # Hours are told in the organisation's zone: 03:00 UTC is 22:00 the evening before in New York.
    assert syncs["2026-11-25T03:00Z"].find("title").text == "Tue 24 Nov 22:00–23:00: 2 ok, 2 failed"
    assert syncs["2026-11-25T04:00Z"].find("title") is None
    day_labels = [text.text for text in svg.iter("text") if text.get("class") == "health-day-label"]
    # The chart runs from 08:00 on the 18th to 08:00 on the 25th in New York: eight days touched.
    assert day_labels == [f"{day:%a} {day.day} Nov" for day in (datetime(2026, 11, d) for d in range(18, 26))]
    midnights = [float(line.get("x1")) for line in svg.iter("line") if line.get("class") == "health-midnight"]
    # New York's midnight of 25 November is 05:00 UTC, 160 hours into the chart.
    assert 48 + 160 * 5 in midnights
    assert "6 syncs ok; 2 syncs failed; 7 notifications received" in svg.find("desc").text
    assert "Last 7 days: 6 syncs ok; 2 syncs failed; 7 notifications received" in html


def test_the_chart_numbers_are_in_a_table_by_local_day(app, login, world, room, clock):
    _, integration_id = room
    with app.app_context():
        db.session.get(Organisation, world.a.org).timezone = "Asia/Tokyo"
        # 20:00 UTC on the 24th is 05:00 on the 25th in Tokyo.
        hourly.count(integration_id, now=datetime(2026, 11, 24, 20, tzinfo=UTC), bookings_created=3)
        db.session.commit()

    html = status_page(login(world.a.admin), world, integration_id)
    rows = re.findall(r"<tr><th scope=\"row\">([^<]+)</th>((?:<td>\d+</td>)+)</tr>", html)
    by_day = {label: [int(n) for n in re.findall(r"\d+", cells)] for label, cells in rows}
    assert by_day["Wed 25 Nov"] == [0, 0, 0, 3, 0, 0]
    assert by_day["Tue 24 Nov"] == [0, 0, 0, 0, 0, 0]
    assert by_day["7 days"] == [0, 0, 0, 3, 0, 0]


def test_a_quiet_integration_says_so_and_draws_no_bars(app, login, world, room):
    _, integration_id = room
    html = status_page(login(world.a.admin), world, integration_id)
    svg = chart_of(html)
    assert len(hour_slots(svg, 1)) == 168
    assert list(svg.iter("rect")) == []
    assert "Nothing was synced, received or booked in the last 7 days." in html


def test_another_organisations_admin_sees_no_chart_of_it(app, login, world, room):
    _, integration_id = room
    client = login(world.b.admin)
    assert client.get(f"/orgs/{world.a.org}/integrations/{integration_id}").status_code == 404
    assert client.get("/support/integrations").status_code == 404


# -- the support overview's sparklines -------------------------------------------------


def test_the_support_overview_shows_a_sparkline_per_integration_from_one_query(app, login, world, room, clock):
    _, integration_id = room
    with app.app_context():
        quiet = Integration(organisation_id=world.b.org, name="Quiet", auth_mode="application")
        db.session.add(quiet)
        db.session.flush()
        db.session.add(CalendarLink(integration_id=quiet.id, mailbox="q@b.example", object_id=world.b.object))
        hourly.count(integration_id, now=clock.now - timedelta(hours=2), syncs_ok=3, syncs_failed=1)
        hourly.count(integration_id, now=clock.now, syncs_ok=1)
        db.session.commit()
        quiet_id = quiet.id

    client = login(world.support)
    reads = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "sync_hourly" in statement:
            reads.append(statement)

    with app.app_context():
        sql_event.listen(db.engine, "before_cursor_execute", record)
        try:
            html = client.get("/support/integrations").get_data(as_text=True)
        finally:
            sql_event.remove(db.engine, "before_cursor_execute", record)
    assert len(reads) == 1

    busy_row = re.search(rf'<tr[^>]*id="integration-{integration_id}">.*?</tr>', html, re.S).group(0)
    quiet_row = re.search(rf'<tr[^>]*id="integration-{quiet_id}">.*?</tr>', html, re.S).group(0)
    assert 'aria-label="4 syncs ok, 1 failed in 7 days"' in busy_row
    # The busiest hour (4 runs) is full height: 3 ok under 1 failed, at hour 165 of 168.
    assert 'd="M165 20v-15.0h1v15.0zM167 20v-5.0h1v5.0z"' in busy_row
    assert 'class="spark-failed" d="M165 5.0v-5.0h1v5.0z"' in busy_row
    assert 'aria-label="0 syncs ok, 0 failed in 7 days"' in quiet_row
    assert "<path" not in quiet_row


def test_a_day_the_clocks_go_back_is_25_hours_wide_on_the_axis(app):
    """Amsterdam leaves summer time on 25 October 2026: that local day has 25 hourly bars."""
    with app.app_context():
        chart = health_chart(1, "Europe/Amsterdam", now=datetime(2026, 10, 27, 12, 30, tzinfo=UTC))
    midnights = {day.label: day.x for day in chart.days if day.starts_here}
    assert midnights["Mon 26 Oct"] - midnights["Sun 25 Oct"] == 25 * 5
    assert midnights["Tue 27 Oct"] - midnights["Mon 26 Oct"] == 24 * 5
    sunday = next(day for day in chart.days if day.label == "Sun 25 Oct")
    # 06:00 on the Sunday is already winter time: 05:00 UTC, seven hours after 22:00 UTC the evening before.
    assert sunday.ticks[0] == (midnights["Sun 25 Oct"] + 7 * 5, "06")
    assert [day.label for day in chart.by_day].count("Sun 25 Oct") == 1
