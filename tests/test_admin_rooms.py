"""The room table of an application-mode integration: listing, sorting, filtering, paging and row actions."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import BookableObject, CalendarLink, Job, SyncSeenEvent
from tests.admin_helpers import add_rooms_integration, audit_entries, count, queued_jobs
from tests.test_bookings import field_errors

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def mailboxes(response):
    """The room mailboxes of the table, in the order shown."""
    return re.findall(r'<td class="mailbox">([^<\s]+)', response.get_data(as_text=True))


@pytest.fixture
def objects(app, world):
    """Three more objects of organisation A: Hall, atrium (lower case on purpose), Studio."""
    with app.app_context():
        rows = [BookableObject(organisation_id=world.a.org, name=name) for name in ("Hall", "atrium", "Studio")]
        db.session.add_all(rows)
        db.session.commit()
        return {row.name: row.id for row in rows}


@pytest.fixture
def table(app, world, objects, clock):
    """Four rooms in every state the table tells apart."""
    with app.app_context():
        return add_rooms_integration(
            world.a,
            [
                dict(
                    mailbox="delta@alpha.example",
                    object_id=objects["Hall"],
                    last_sync_status="ok",
                    last_sync_at=NOW - timedelta(minutes=5),
                    subscription_expires_at=NOW + timedelta(days=2),
                ),
                dict(
                    mailbox="alpha@alpha.example",
                    object_id=objects["Studio"],
                    last_sync_status="error",
                    last_sync_at=NOW - timedelta(hours=3),
                    last_sync_error="GraphAccessDenied: Access is denied.",
                ),
                dict(mailbox="charlie@alpha.example", object_id=objects["atrium"], enabled=False),
                dict(
                    mailbox="bravo@alpha.example",
                    object_id=world.a.object,
                    last_sync_status="ok",
                    last_sync_at=NOW - timedelta(days=2),
                    subscription_error="Subscription validation request failed.",
                ),
            ],
        )


def test_each_row_shows_last_sync_status_subscription_and_last_error(login, world, table):
    page = login(world.a.admin).get(table.base + "/rooms").get_data(as_text=True)
    assert "4 room(s): 1 healthy, 2 failing, 0 never synced, 1 disabled." in page

    def row(mailbox):
        start = page.index(f'<tr id="room-{table.links[mailbox]}"')
        return page[start : page.index("</tr>", start)]

    delta = row("delta@alpha.example")
    assert "5 minutes ago" in delta and "state-ok" in delta and "2026-11-27 13:00" in delta  # Amsterdam time
    assert "Sync now" in delta and "Disable" in delta and "Remove…" in delta
    alpha = row("alpha@alpha.example")
    assert "3 hours ago" in alpha and "state-error" in alpha
    assert "Access denied: the tenant&#39;s application access policy or RBAC scope excludes this mailbox." in alpha
    raw = alpha.index("GraphAccessDenied: Access is denied.")
    assert alpha.index("<details") < raw < alpha.index("</details>")
    bravo = row("bravo@alpha.example")
    assert "state-error" in bravo and "Subscription: Microsoft could not reach the notification URL" in bravo
    assert "Check that PUBLIC_BASE_URL" in bravo
    assert bravo.index("<details") < bravo.index("Subscription validation request failed.")
    charlie = row("charlie@alpha.example")
    assert "never" in charlie and "disabled" in charlie and "Enable" in charlie and "Sync now" not in charlie


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["alpha", "bravo", "charlie", "delta"]),
        ("?sort=upn&dir=desc", ["delta", "charlie", "bravo", "alpha"]),
        # Object names compare without case: atrium, Hall, Room A, Studio.
        ("?sort=object", ["charlie", "delta", "bravo", "alpha"]),
        ("?sort=object&dir=desc", ["alpha", "bravo", "delta", "charlie"]),
        # Never synced counts as the oldest sync.
        ("?sort=last_sync", ["charlie", "bravo", "alpha", "delta"]),
        ("?sort=last_sync&dir=desc", ["delta", "alpha", "bravo", "charlie"]),
        # error, never, ok; the address breaks ties.
        ("?sort=status", ["alpha", "bravo", "charlie", "delta"]),
        ("?sort=status&dir=desc", ["delta", "charlie", "alpha", "bravo"]),
        ("?sort=nonsense", ["alpha", "bravo", "charlie", "delta"]),
    ],
)
def test_the_table_sorts_by_each_column(login, world, table, query, expected):
    response = login(world.a.admin).get(table.base + "/rooms" + query)
    assert mailboxes(response) == [f"{name}@alpha.example" for name in expected]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?q=BRAVO", ["bravo"]),
        ("?q=hall", ["delta"]),  # the object's name, case ignored
        ("?q=alpha.example", ["alpha", "bravo", "charlie", "delta"]),
        ("?q=%25", []),  # a literal percent sign, not a wildcard
        ("?status=error", ["alpha", "bravo"]),
        ("?status=never", ["charlie"]),
        ("?status=ok", ["delta"]),
        ("?enabled=no", ["charlie"]),
        ("?enabled=yes&status=error&q=alpha%40", ["alpha"]),
    ],
)
def test_the_table_filters_by_text_status_and_enabled(login, world, table, query, expected):
    response = login(world.a.admin).get(table.base + "/rooms" + query)
    assert mailboxes(response) == [f"{name}@alpha.example" for name in expected]
    if not expected:
        assert "No room matches these filters." in response.get_data(as_text=True)


def test_an_unknown_filter_value_is_explained_and_ignored(login, world, table):
    response = login(world.a.admin).get(table.base + "/rooms?status=broken")
    assert response.status_code == 200
    assert "Status: Not a valid choice." in response.get_data(as_text=True)
    assert len(mailboxes(response)) == 4


def test_hundreds_of_rooms_come_fifty_to_a_page(app, login, world):
    with app.app_context():
        rooms = add_rooms_integration(world.a, [f"room-{n:03d}@alpha.example" for n in range(120)])
    client = login(world.a.admin)
    first = client.get(rooms.base + "/rooms")
    assert mailboxes(first) == [f"room-{n:03d}@alpha.example" for n in range(50)]
    page = first.get_data(as_text=True)
    assert "Page 1 of 3 · 120 rooms" in page
    assert f'href="{rooms.base}/rooms?page=2&amp;sort=upn&amp;dir=asc"' in page
    third = client.get(rooms.base + "/rooms?page=3&sort=upn&dir=asc")
    assert mailboxes(third) == [f"room-{n:03d}@alpha.example" for n in range(100, 120)]
    # Filters and sort order survive paging.
    descending = client.get(rooms.base + "/rooms?q=room-0&sort=upn&dir=desc&page=2")
    assert mailboxes(descending) == [f"room-{n:03d}@alpha.example" for n in range(49, -1, -1)]
    assert "Page 2 of 2 · 100 rooms" in descending.get_data(as_text=True)


def test_sync_now_queues_a_sync_and_calls_nobody(app, login, world, table, mocked):
    link_id = table.links["delta@alpha.example"]
    client = login(world.a.admin)
    response = client.post(f"{table.base}/rooms/{link_id}/sync", data={"return_to": "status=ok&page=1&evil=x"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"{table.base}/rooms?status=ok&page=1"
    with app.app_context():
        assert queued_jobs() == [("sync_link", str(link_id))]
    # A second press coalesces with the pending sync.
    client.post(f"{table.base}/rooms/{link_id}/sync")
    with app.app_context():
        assert count(Job) == 1
    assert len(mocked.calls) == 0


def test_a_disabled_room_is_not_synced_now(app, login, world, table):
    response = login(world.a.admin).post(
        f"{table.base}/rooms/{table.links['charlie@alpha.example']}/sync", follow_redirects=True
    )
    assert "is disabled: enable it to sync it." in response.get_data(as_text=True)
    with app.app_context():
        assert count(Job) == 0


def test_disabling_unsubscribes_and_enabling_subscribes_and_syncs(app, login, world, table):
    link_id = table.links["delta@alpha.example"]
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        link.subscription_id, link.subscription_client_state = "sub-delta", "state"
        db.session.commit()
    client = login(world.a.admin)
    assert client.post(f"{table.base}/rooms/{link_id}/disable").status_code == 302
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        assert (link.enabled, link.subscription_id) == (False, None)
        assert queued_jobs() == [("delete_subscription", "sub-delta")]
        db.session.execute(db.delete(Job))
        db.session.commit()

    assert client.post(f"{table.base}/rooms/{link_id}/enable").status_code == 302
    with app.app_context():
        assert db.session.get(CalendarLink, link_id).enabled is True
        assert queued_jobs() == [("subscribe_link", str(link_id)), ("sync_link", str(link_id))]
        assert [entry[:2] for entry in audit_entries()] == [
            ("room_disabled", "delta@alpha.example."),
            ("room_enabled", "delta@alpha.example."),
        ]
    # Enabling an enabled room changes nothing and records nothing.
    client.post(f"{table.base}/rooms/{link_id}/enable")
    with app.app_context():
        assert len(audit_entries()) == 2


def test_a_room_is_added_with_its_jobs_and_audit_entry(app, login, world, table, objects):
    response = login(world.a.admin).post(
        table.base + "/rooms", data={"upn": "Echo@Alpha.example", "object_id": objects["Studio"]}
    )
    assert response.status_code == 302 and response.headers["Location"] == table.base + "/rooms"
    with app.app_context():
        link_id = db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.mailbox == "echo@alpha.example"))
        assert queued_jobs() == [("subscribe_link", str(link_id)), ("sync_link", str(link_id))]
        assert audit_entries() == [("room_added", "echo@alpha.example → Studio.", world.a.admin)]


def test_editing_the_object_keeps_the_sync_state(app, login, world, table, objects):
    link_id = table.links["delta@alpha.example"]
    client = login(world.a.admin)
    form = client.get(f"{table.base}/rooms/{link_id}/edit").get_data(as_text=True)
    assert 'value="delta@alpha.example"' in form and f'<option selected value="{objects["Hall"]}">' in form
    response = client.post(
        f"{table.base}/rooms/{link_id}/edit", data={"upn": "delta@alpha.example", "object_id": objects["Studio"]}
    )
    assert response.status_code == 302
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        assert (link.object_id, link.last_sync_status) == (objects["Studio"], "ok")
        assert count(Job) == 0
        assert audit_entries() == [("room_edited", "delta@alpha.example: object Hall → Studio.", world.a.admin)]


def test_a_new_address_starts_the_calendar_afresh(app, login, world, table):
    link_id = table.links["delta@alpha.example"]
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        link.subscription_id, link.subscription_client_state = "sub-delta", "state"
        link.delta_link = "https://graph.test/v1.0/delta?token=old"
        db.session.add(SyncSeenEvent(link_id=link_id, event_id="AAMk-1"))
        db.session.commit()
    response = login(world.a.admin).post(
        f"{table.base}/rooms/{link_id}/edit", data={"upn": "Delta-2@alpha.example", "object_id": world.a.object}
    )
    assert response.status_code == 302
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        assert link.mailbox == "delta-2@alpha.example"
        assert (link.delta_link, link.subscription_id, link.last_sync_at, link.last_sync_status) == (
            None,
            None,
            None,
            "never",
        )
        assert count(SyncSeenEvent) == 0
        assert queued_jobs() == [
            ("delete_subscription", "sub-delta"),
            ("subscribe_link", str(link_id)),
            ("sync_link", str(link_id)),
        ]
        assert audit_entries()[0][1] == (
            "delta-2@alpha.example: address delta@alpha.example → delta-2@alpha.example; object Hall → Room A."
        )


@pytest.mark.parametrize(
    "data, field, message",
    [
        (
            {"upn": "ALPHA@alpha.example", "object_id": "OBJ"},
            "upn",
            "Another room of this integration has this address.",
        ),
        ({"upn": "not an address", "object_id": "OBJ"}, "upn", "Enter an e-mail address such as room-1@contoso.com."),
        ({"upn": "", "object_id": "OBJ"}, "upn", "Enter the e-mail address (UPN) of the room mailbox."),
        ({"upn": "delta@alpha.example", "object_id": 0}, "object_id", "Choose the object this room books."),
        ({"upn": "delta@alpha.example", "object_id": "B_OBJ"}, "object_id", "Not a valid choice."),
    ],
)
def test_room_edit_errors_are_shown_next_to_their_field(app, login, world, table, data, field, message):
    data = dict(data)
    data["object_id"] = {"OBJ": world.a.object, "B_OBJ": world.b.object}.get(data["object_id"], data["object_id"])
    link_id = table.links["delta@alpha.example"]
    response = login(world.a.admin).post(f"{table.base}/rooms/{link_id}/edit", data=data)
    assert response.status_code == 200
    assert field_errors(response, field) == [message]
    with app.app_context():
        assert db.session.get(CalendarLink, link_id).mailbox == "delta@alpha.example"
        assert audit_entries() == []


def test_the_add_form_shows_its_errors_on_the_room_table(login, world, table):
    response = login(world.a.admin).post(table.base + "/rooms", data={"upn": "bravo@alpha.example", "object_id": 0})
    page = response.get_data(as_text=True)
    assert field_errors(response, "object_id") == ["Choose the object this room books."]
    assert '<details class="add-room" open>' in page and "bravo@alpha.example" in mailboxes(response)


def test_removing_asks_first_then_unsubscribes_deletes_and_records(app, login, world, table):
    link_id = table.links["delta@alpha.example"]
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        link.subscription_id, link.subscription_client_state = "sub-delta", "state"
        db.session.commit()
    client = login(world.a.admin)
    confirm = client.get(f"{table.base}/rooms/{link_id}/remove?status=ok").get_data(as_text=True)
    assert "Remove room delta@alpha.example?" in confirm
    assert '<input type="hidden" name="return_to" value="status=ok">' in confirm
    with app.app_context():
        assert db.session.get(CalendarLink, link_id) is not None
    response = client.post(f"{table.base}/rooms/{link_id}/remove", data={"return_to": "status=ok"})
    assert response.headers["Location"] == f"{table.base}/rooms?status=ok"
    with app.app_context():
        assert db.session.get(CalendarLink, link_id) is None
        assert queued_jobs() == [("delete_subscription", "sub-delta")]
        assert audit_entries() == [("room_removed", "delta@alpha.example (was mapped to Hall).", world.a.admin)]


def test_a_delegated_integration_has_no_room_pages(app, login, world):
    with app.app_context():
        delegated = add_rooms_integration(world.a, auth_mode="delegated", object_id=world.a.object)
    client = login(world.a.admin)
    assert client.get(delegated.base + "/rooms").status_code == 400
    assert client.get(delegated.base + "/rooms/paste").status_code == 400
    assert 'href="' + delegated.base + '/rooms"' not in client.get(delegated.base).get_data(as_text=True)
