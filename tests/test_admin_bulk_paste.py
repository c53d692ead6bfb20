"""Bulk paste of rooms: the plan per line, the preview that writes nothing, and applying on confirmation."""

import re

import pytest

from app.admin.bulk_paste import MAX_LINES, plan_paste
from app.admin.forms import is_mailbox_address
from app.extensions import db
from app.models import AuditEntry, BookableObject, CalendarLink, Job
from tests.admin_helpers import add_rooms_integration, audit_entries, count, queued_jobs
from tests.test_bookings import field_errors

OBJECTS = [(1, "Board room"), (2, "Hall"), (3, "Hall, east wing"), (4, "Studio"), (5, "STUDIO B"), (6, "studio b")]


def plan(text, rooms=None):
    return plan_paste(text, rooms=rooms or {}, objects=OBJECTS, is_address=is_mailbox_address)


# --- The plan, line by line --------------------------------------------------------------


def test_each_line_is_added_changed_unchanged_or_rejected_with_its_reason():
    result = plan(
        "\n".join(
            [
                "upn,object",  # 1: a header, skipped
                "room-1@contoso.com,board ROOM",  # 2: by name, case ignored
                "",  # 3
                "# a comment",  # 4
                "Room-2@Contoso.com;2",  # 5: by id, semicolon, address lower-cased
                "room-3@contoso.com\tHall, east wing",  # 6: tab; a name with a comma
                "room-4@contoso.com,Hall, east wing",  # 7: split at the first comma only
                "kept@contoso.com,Studio",  # 8: in the table with this object
                "moved@contoso.com,Studio",  # 9: in the table with another object
                "not-an-address,Hall",  # 10
                "room-5@contoso.com,Ballroom",  # 11
                "ROOM-1@contoso.com,Hall",  # 12: a duplicate of line 2
                "room-6@contoso.com",  # 13: no object
                "room-7@contoso.com,studio b",  # 14: two objects match without case
                "room-8@contoso.com,99",  # 15: no such id
                ",Hall",  # 16
            ]
        ),
        rooms={"kept@contoso.com": (10, 4), "moved@contoso.com": (11, 2)},
    )
    assert [(p.line, p.upn, p.object_id) for p in result.added] == [
        (2, "room-1@contoso.com", 1),
        (5, "room-2@contoso.com", 2),
        (6, "room-3@contoso.com", 3),
        (7, "room-4@contoso.com", 3),
    ]
    assert [(p.line, p.upn, p.link_id, p.old_object_name, p.object_name) for p in result.changed] == [
        (9, "moved@contoso.com", 11, "Hall", "Studio")
    ]
    assert [(p.line, p.upn) for p in result.unchanged] == [(8, "kept@contoso.com")]
    assert [(r.line, r.reason) for r in result.rejected] == [
        (10, "“not-an-address” is not an e-mail address."),
        (11, "Unknown object “Ballroom”: no object of this organisation has this name or id."),
        (12, "Duplicate: line 2 has this address already."),
        (13, "No object: write the address, a comma, then the object's name or id."),
        (14, "Several objects are called “studio b” when case is ignored; use the object's id."),
        (15, "Unknown object “99”: no object of this organisation has this name or id."),
        (16, "No address before the separator."),
    ]
    assert result.rejected[0].text == "not-an-address,Hall"
    assert result.summary() == "4 added, 1 changed, 1 unchanged, 7 rejected"


def test_a_header_is_only_skipped_as_the_first_line():
    result = plan("room-1@contoso.com,Hall\nupn,object")
    assert [p.upn for p in result.added] == ["room-1@contoso.com"]
    assert [r.line for r in result.rejected] == [2]


def test_a_name_that_looks_like_an_id_is_taken_as_the_name():
    objects = [(1, "Hall"), (2, "1")]
    result = plan_paste("room@contoso.com,1", rooms={}, objects=objects, is_address=is_mailbox_address)
    assert result.added[0].object_id == 2


def test_the_digest_changes_with_what_would_be_written_only():
    first = plan("room-1@contoso.com,Hall\nbad,Hall")
    assert first.digest() == plan("# note\nroom-1@contoso.com , hall").digest()
    assert first.digest() != plan("room-1@contoso.com,Studio").digest()
    assert first.digest() != plan("room-1@contoso.com,Hall", rooms={"room-1@contoso.com": (1, 1)}).digest()


# --- The pages ---------------------------------------------------------------------------

PASTE = "\n".join(
    [
        "upn,object",
        "new-1@alpha.example,hall",
        "new-2@alpha.example,{room_a}",
        "not-an-address,Hall",
        "new-3@alpha.example,Ballroom",
        "new-1@alpha.example,Room A",
        "existing@alpha.example,Hall",
        "same@alpha.example,Room A",
        "new-4@alpha.example,{b_object}",
    ]
)


@pytest.fixture
def rooms(app, world):
    with app.app_context():
        hall = BookableObject(organisation_id=world.a.org, name="Hall")
        db.session.add(hall)
        db.session.commit()
        integration = add_rooms_integration(world.a, ["existing@alpha.example", "same@alpha.example"])
        integration.hall = hall.id
        return integration


def paste_text(world):
    return PASTE.format(room_a=world.a.object, b_object=world.b.object)


def section(page, name):
    start = page.index(f'id="{name}"')
    return page[start : page.index("</section>", start)] if "</section>" in page[start:] else page[start:]


def test_the_preview_lists_every_outcome_and_writes_nothing(app, login, world, rooms):
    client = login(world.a.admin)
    assert "Rooms, one per line" in client.get(rooms.base + "/rooms/paste").get_data(as_text=True)
    response = client.post(rooms.base + "/rooms/paste", data={"rooms": paste_text(world), "preview": "Preview"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    summary = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", section(page, "paste-summary").split("</p>")[0]))
    assert "2 to add, 1 to change, 1 unchanged, 4 rejected." in summary
    added = section(page, "added")
    assert "new-1@alpha.example" in added and "new-2@alpha.example" in added and "Hall" in added
    changed = section(page, "changed")
    assert "existing@alpha.example" in changed and "<td>Room A</td><td>Hall</td>" in changed
    rejected = section(page, "rejected")
    for line, reason in (
        (4, "“not-an-address” is not an e-mail address."),
        (5, "Unknown object “Ballroom”"),
        (6, "Duplicate: line 2 has this address already."),
        (9, f"Unknown object “{world.b.object}”"),  # another organisation's object is unknown here
    ):
        assert re.search(rf'<td class="num">{line}</td>.*?{re.escape(reason)}', rejected, re.S), line
    # The text travels to the confirmation in a hidden field, with the fingerprint of this preview.
    assert '<input type="hidden" name="rooms" value="upn,object\nnew-1@alpha.example,hall' in page
    assert re.search(r'<input type="hidden" name="digest" value="[0-9a-f]{64}">', page)
    with app.app_context():
        assert count(CalendarLink) == 2
        assert count(Job) == 0
        assert count(AuditEntry) == 0


def test_confirming_applies_the_plan_and_queues_the_new_rooms(app, login, world, rooms):
    client = login(world.a.admin)
    preview = client.post(rooms.base + "/rooms/paste", data={"rooms": paste_text(world), "preview": "Preview"})
    digest = re.search(r'name="digest" value="([0-9a-f]{64})"', preview.get_data(as_text=True)).group(1)

    response = client.post(
        rooms.base + "/rooms/paste", data={"rooms": paste_text(world), "digest": digest, "apply": "Apply"}
    )

    assert response.status_code == 302 and response.headers["Location"] == rooms.base + "/rooms"
    with app.app_context():
        links = dict(db.session.execute(db.select(CalendarLink.mailbox, CalendarLink.object_id)).all())
        assert links == {
            "new-1@alpha.example": rooms.hall,
            "new-2@alpha.example": world.a.object,
            "existing@alpha.example": rooms.hall,
            "same@alpha.example": world.a.object,
        }
        new_ids = [
            str(db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.mailbox == mailbox)))
            for mailbox in ("new-1@alpha.example", "new-2@alpha.example")
        ]
        assert queued_jobs() == sorted(
            [("subscribe_link", key) for key in new_ids] + [("sync_link", key) for key in new_ids]
        )
        [(action, detail, who)] = audit_entries(rooms.id)
        assert (action, who) == ("rooms_pasted", world.a.admin)
        assert detail.startswith("2 added, 1 changed, 1 unchanged, 4 rejected.")
        assert "existing@alpha.example Room A → Hall" in detail
    table = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 room(s) added, 1 changed" in table and "new-2@alpha.example" in table


def test_a_confirmation_that_no_longer_matches_the_preview_writes_nothing(app, login, world, rooms):
    client = login(world.a.admin)
    preview = client.post(rooms.base + "/rooms/paste", data={"rooms": "new-1@alpha.example,Hall", "preview": "Preview"})
    digest = re.search(r'name="digest" value="([0-9a-f]{64})"', preview.get_data(as_text=True)).group(1)
    # Meanwhile someone adds the same room by hand.
    client.post(rooms.base + "/rooms", data={"upn": "new-1@alpha.example", "object_id": world.a.object})
    with app.app_context():
        before = count(Job)

    response = client.post(
        rooms.base + "/rooms/paste", data={"rooms": "new-1@alpha.example,Hall", "digest": digest, "apply": "Apply"}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The room table changed since the preview." in page
    assert "0</strong> to add" in page and "1</strong> to change" in page
    with app.app_context():
        assert (
            db.session.scalar(db.select(CalendarLink.object_id).where(CalendarLink.mailbox == "new-1@alpha.example"))
            == world.a.object
        )
        assert count(Job) == before
        assert [entry[0] for entry in audit_entries()] == ["room_added"]


def test_a_paste_with_nothing_to_do_changes_nothing(app, login, world, rooms):
    client = login(world.a.admin)
    preview = client.post(rooms.base + "/rooms/paste", data={"rooms": "same@alpha.example,Room A", "preview": "1"})
    assert "Nothing to add or change." in preview.get_data(as_text=True)
    digest = re.search(r'name="digest" value="([0-9a-f]{64})"', preview.get_data(as_text=True))
    assert digest is None  # no Apply button
    with app.app_context():
        assert count(AuditEntry) == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "Paste at least one line: the room&#39;s address, a comma, then its object."),
        ("\n".join(f"r{n}@alpha.example,Hall" for n in range(MAX_LINES + 1)), f"At most {MAX_LINES} lines at a time"),
    ],
)
def test_an_empty_or_huge_paste_is_refused_next_to_the_field(app, login, world, rooms, text, message):
    response = login(world.a.admin).post(rooms.base + "/rooms/paste", data={"rooms": text, "preview": "Preview"})
    assert response.status_code == 200
    assert field_errors(response, "rooms")[0].startswith(message)
    with app.app_context():
        assert count(CalendarLink) == 2
