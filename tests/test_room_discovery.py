"""Room discovery: rooms read from Graph Places by a job, picked, previewed and added; the vanished-room flag."""

import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from responses import matchers

from app.admin import discovery as discovery_views
from app.connection import discovery as room_discovery
from app.extensions import db
from app.graph import places
from app.models import AuditEntry, BookableObject, CalendarLink, Integration, Job, User
from tests.admin_helpers import TENANT, add_rooms_integration, audit_entries, count, queued_jobs, run_queued_jobs
from tests.conftest import config_for

GRAPH = "https://graph.test/v1.0"
TOKEN_URL = f"https://login.test/{TENANT}/oauth2/v2.0/token"
APP_TOKEN = {"token_type": "Bearer", "expires_in": 3599, "access_token": "app-only-access-token-PLACES-7e1"}
ROOMS_URL = f"{GRAPH}/places/microsoft.graph.room"
ROOM_LISTS_URL = f"{GRAPH}/places/microsoft.graph.roomlist"
FIRST_PAGE = matchers.query_param_matcher({"$top": "100"})
FIXTURES = Path(__file__).parent / "fixtures" / "graph"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def room(email, name, capacity=None, **extra):
    item = {"id": f"id-{email}", "emailAddress": email, "displayName": name, **extra}
    if capacity is not None:
        item["capacity"] = capacity
    return item


def graph_error(code, message):
    return {"error": {"code": code, "message": message, "innerError": {"request-id": "req-places-0001"}}}


def rooms_in(room_list):
    return f"{GRAPH}/places/{room_list}/microsoft.graph.roomlist/rooms"


def page(items, next_link=None):
    body = {"value": items}
    if next_link:
        body["@odata.nextLink"] = next_link
    return body


def answer_token(mocked):
    mocked.add(responses.POST, TOKEN_URL, json=APP_TOKEN)


def answer_room_lists(mocked, lists=()):
    mocked.add(responses.GET, ROOM_LISTS_URL, json=page(list(lists)), match=[FIRST_PAGE])


def answer_rooms(mocked, *pages, url=ROOMS_URL):
    """Each page after the first is asked for with the nextLink of the one before."""
    for number, items in enumerate(pages):
        last = number == len(pages) - 1
        next_link = None if last else f"{url}?$top=100&$skiptoken=page-{number + 2}"
        query = {"$top": "100"} if number == 0 else {"$top": "100", "$skiptoken": f"page-{number + 1}"}
        mocked.add(responses.GET, url, json=page(items, next_link), match=[matchers.query_param_matcher(query)])


TENANT_ROOMS = [
    room("cf100@contoso.com", "Conf Room 100", "50", building="1", floorNumber=1),  # capacity as a string
    room("cf200@contoso.com", "Conf Room 200", 40, building="2", floorNumber=2),
    room("Focus-1@Contoso.com", "Focus 1"),  # no capacity, building or floor; mixed case
    {"id": "no-address", "displayName": "Phone booth"},  # cannot be mapped
]


@pytest.fixture
def rooms(app, world):
    """Organisation A's rooms integration: cf100 already mapped to Room A; an object called Hall."""
    with app.app_context():
        hall = BookableObject(organisation_id=world.a.org, name="Hall", capacity=120)
        db.session.add(hall)
        db.session.commit()
        integration = add_rooms_integration(world.a, ["cf100@contoso.com", "old-room@contoso.com"])
        integration.hall = hall.id
        integration.discover = integration.base + "/rooms/discover"
        integration.imports = integration.base + "/rooms/discover/import"
        return integration


def rows_of(page_html):
    """{e-mail: row html} of the table of found rooms."""
    return {
        match.group(1): match.group(0)
        for match in re.finditer(r'<tr[^>]*data-email="([^"]+)">.*?</tr>', page_html, re.S)
    }


def form_fields(row_html):
    return dict(re.findall(r'name="(rooms-\d+-\w+)"[^>]*value="([^"]*)"', row_html))


def missing_since(mailbox):
    return db.session.scalar(db.select(CalendarLink.places_missing_since).where(CalendarLink.mailbox == mailbox))


REFRESH = '<meta http-equiv="refresh" content="3">'


def find_rooms(app, client, rooms, path=""):
    """Press "Find rooms in Microsoft 365", let the queued job read the faked Places, return the page at `path`.

    The page itself never calls Graph: `mocked` fails the test on any request it was not told of.
    """
    clicked = client.post(rooms.discover)
    assert clicked.status_code == 302 and clicked.headers["Location"] == rooms.discover
    with app.app_context():
        outcomes = run_queued_jobs(room_discovery.DISCOVER_ROOMS)
    assert outcomes == {(room_discovery.DISCOVER_ROOMS, str(rooms.id)): "done"}
    response = client.get(rooms.discover + path)
    assert response.status_code == 200
    assert REFRESH not in response.get_data(as_text=True)
    return response


# --- Parsing ------------------------------------------------------------------------------


def test_places_items_are_read_leniently():
    example = places.parse_room(fixture("places-rooms-list.json")["value"][0])
    assert example == places.Room("cf100@contoso.com", "Conf Room 100", 50, "1", "1", 1)
    assert places.parse_room(room("A@X.example", "A", "50")).capacity == 50
    assert places.parse_room(room("a@x.example", "A", 12.0)).capacity == 12
    bare = places.parse_room({"emailAddress": "b@x.example"})
    assert (bare.display_name, bare.capacity, bare.building, bare.floor) == ("b@x.example", None, None, None)
    labelled = places.parse_room(room("c@x.example", "C", "lots", floorLabel="Ground", floorNumber="0"))
    assert (labelled.capacity, labelled.floor, labelled.floor_number) == (None, "Ground", 0)
    assert places.parse_room(room("d@x.example", "D", -1)).capacity is None
    assert places.parse_room(room("d@x.example", "D", True)).capacity is None
    assert places.parse_room({"displayName": "No address"}) is None
    assert places.parse_room("not a place") is None


def test_a_room_list_is_addressed_by_its_quoted_email_address():
    assert places.rooms_in_list_path("bldg2@contoso.com") == "places/bldg2@contoso.com/microsoft.graph.roomlist/rooms"
    assert (
        places.rooms_in_list_path("a/b?c#d@x.example")
        == "places/a%2Fb%3Fc%23d@x.example/microsoft.graph.roomlist/rooms"
    )


# --- Listing ------------------------------------------------------------------------------


def test_all_rooms_are_listed_page_by_page_with_what_is_mapped(app, login, world, rooms, mocked):
    answer_token(mocked)
    answer_room_lists(mocked)  # no room lists: the page shows every room at once
    answer_rooms(mocked, TENANT_ROOMS[:2], TENANT_ROOMS[2:])

    response = find_rooms(app, login(world.a.admin), rooms)

    page_html = response.get_data(as_text=True)
    rows = rows_of(page_html)
    assert list(rows) == ["cf100@contoso.com", "cf200@contoso.com", "focus-1@contoso.com"]
    mapped = rows["cf100@contoso.com"]
    assert "Conf Room 100" in mapped and "mapped to Room A" in mapped and 'type="checkbox"' not in mapped
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows["cf200@contoso.com"], re.S)
    assert [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells[1:6]] == [
        "Conf Room 200",
        "cf200@contoso.com",
        "40",
        "2",
        "2",
    ]
    assert 'type="checkbox"' in rows["cf200@contoso.com"]
    assert "New object “Conf Room 200”" in rows["cf200@contoso.com"]
    focus = form_fields(rows["focus-1@contoso.com"])
    assert focus["rooms-1-email"] == "focus-1@contoso.com" and focus["rooms-1-capacity"] == ""
    assert "1 place(s) without an e-mail address are not shown" in page_html
    assert "3 room(s), 1 already in the room table" in page_html
    assert "Find rooms again" in page_html


def test_before_any_search_the_page_offers_one_and_lists_nothing(app, login, world, rooms, mocked):
    page_html = login(world.a.admin).get(rooms.discover).get_data(as_text=True)
    assert f'<form method="post" action="{rooms.discover}"' in page_html
    assert "Find rooms in Microsoft 365</button>" in page_html
    assert rows_of(page_html) == {} and REFRESH not in page_html
    assert len(mocked.calls) == 0


def test_a_search_waiting_for_the_job_pool_refreshes_the_page(app, login, world, rooms, mocked):
    client = login(world.a.admin)
    client.post(rooms.discover, data={"list": "bldg2@contoso.com"})
    page_html = client.get(rooms.discover).get_data(as_text=True)
    assert "Finding rooms in Microsoft 365 is queued" in page_html and REFRESH in page_html
    assert "Find rooms again" not in page_html
    assert len(mocked.calls) == 0
    with app.app_context():
        assert queued_jobs() == [(room_discovery.DISCOVER_ROOMS, str(rooms.id))]


def test_room_lists_come_first_and_one_list_shows_only_its_rooms(app, login, world, rooms, mocked):
    client = login(world.a.admin)
    answer_token(mocked)
    answer_room_lists(mocked, fixture("places-roomlists-list.json")["value"])
    answer_rooms(mocked, fixture("places-rooms-list.json")["value"])
    answer_rooms(mocked, [], url=rooms_in("bldg1@contoso.com"))
    answer_rooms(mocked, fixture("places-rooms-in-roomlist.json")["value"], url=rooms_in("bldg2@contoso.com"))

    landing = find_rooms(app, client, rooms).get_data(as_text=True)

    assert "Building 1" in landing and "Building 2" in landing
    assert f'href="{rooms.discover}?list=bldg2@contoso.com"' in landing
    assert "2 room(s) in Microsoft 365, 1 of them in this room table." in landing
    assert rows_of(landing) == {}  # the rooms themselves wait until a list is chosen

    # Choosing a list shows what the job stored: Graph is not asked again.
    calls = len(mocked.calls)
    building = client.get(rooms.discover + "?list=bldg2@contoso.com").get_data(as_text=True)

    assert len(mocked.calls) == calls
    assert list(rows_of(building)) == ["cf200@contoso.com"]
    assert 'aria-current="page">Building 2</a>' in building
    assert '<input id="room_list" name="room_list" type="hidden" value="bldg2@contoso.com">' in building
    assert list(rows_of(client.get(rooms.discover + "?list=all").get_data(as_text=True))) == [
        "cf100@contoso.com",
        "cf200@contoso.com",
    ]
    assert "No rooms found" in client.get(rooms.discover + "?list=bldg1@contoso.com").get_data(as_text=True)


def test_a_room_list_gone_before_its_rooms_were_read_is_left_out(app, login, world, rooms, mocked):
    answer_token(mocked)
    answer_room_lists(mocked, fixture("places-roomlists-list.json")["value"])
    answer_rooms(mocked, fixture("places-rooms-list.json")["value"])
    mocked.add(
        responses.GET,
        rooms_in("bldg1@contoso.com"),
        status=404,
        json=graph_error("ErrorItemNotFound", "Not found."),
        match=[FIRST_PAGE],
    )
    answer_rooms(mocked, fixture("places-rooms-in-roomlist.json")["value"], url=rooms_in("bldg2@contoso.com"))
    landing = find_rooms(app, login(world.a.admin), rooms).get_data(as_text=True)
    assert "Building 2" in landing and "Building 1" not in landing


def test_an_unknown_room_list_is_reported(app, login, world, rooms, mocked):
    answer_token(mocked)
    answer_room_lists(mocked)
    answer_rooms(mocked, TENANT_ROOMS)
    page_html = find_rooms(app, login(world.a.admin), rooms, "?list=elsewhere@contoso.com").get_data(as_text=True)
    assert "Microsoft 365 has no room list with the address elsewhere@contoso.com" in page_html


def test_tick_all_pre_ticks_every_room_not_in_the_table(app, login, world, rooms, mocked):
    answer_token(mocked)
    answer_room_lists(mocked)
    answer_rooms(mocked, TENANT_ROOMS)
    page_html = find_rooms(app, login(world.a.admin), rooms, "?list=all&tick=all").get_data(as_text=True)
    rows = rows_of(page_html)
    assert "checked" in rows["cf200@contoso.com"] and "checked" in rows["focus-1@contoso.com"]
    assert "checkbox" not in rows["cf100@contoso.com"]


def test_a_room_named_like_an_object_is_offered_that_object(app, login, world, rooms, mocked):
    answer_token(mocked)
    answer_room_lists(mocked)
    answer_rooms(mocked, [room("hall@contoso.com", "HALL")])
    row = rows_of(find_rooms(app, login(world.a.admin), rooms).get_data(as_text=True))["hall@contoso.com"]
    assert f'<option value="{rooms.hall}" selected>Hall</option>' in row


@pytest.mark.parametrize(
    "code, message",
    [
        ("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
        ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    ],
)
def test_without_place_read_all_the_page_says_which_permission_to_add(app, login, world, rooms, mocked, code, message):
    answer_token(mocked)
    mocked.add(responses.GET, ROOM_LISTS_URL, status=403, json=graph_error(code, message))

    response = find_rooms(app, login(world.a.admin), rooms)

    problem = html.unescape(re.search(r'id="discovery-problem">(.*?)</div>', response.get_data(as_text=True), re.S)[1])
    problem = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", problem))
    assert code in problem
    assert "Microsoft Graph → Application permissions → Place.Read.All" in problem
    assert "Grant admin consent" in problem and "administrator consents" in problem
    with app.app_context():
        assert missing_since("old-room@contoso.com") is None


def test_another_graph_error_is_shown_in_plain_words_with_its_code_behind_the_details(app, login, world, rooms, mocked):
    answer_token(mocked)
    answer_room_lists(mocked)
    mocked.add(
        responses.GET, ROOMS_URL, status=400, json=graph_error("ErrorInvalidRequest", "The request is not valid.")
    )
    page_html = find_rooms(app, login(world.a.admin), rooms).get_data(as_text=True)
    problem = page_html[page_html.index('id="discovery-problem"') :]
    # A plain sentence and what to do first; the code and request id wait behind the disclosure.
    assert problem.index("error-sentence") < problem.index("Details for support")
    assert problem.index("Details for support") < problem.index("ErrorInvalidRequest")
    assert problem.index("Details for support") < problem.index("req-places-0001")
    assert "Place.Read.All</strong>" not in page_html


def test_a_token_refusal_says_what_to_do_with_its_code_behind_the_details(app, login, world, rooms, mocked):
    mocked.add(
        responses.POST,
        TOKEN_URL,
        status=401,
        json=json.loads((FIXTURES.parent / "identity" / "error-invalid-client-secret.json").read_text()),
    )
    page_html = find_rooms(app, login(world.a.admin), rooms).get_data(as_text=True)
    problem = page_html[page_html.index('id="discovery-problem"') :]
    assert "Create a new client secret" in problem
    assert problem.index("Create a new client secret") < problem.index("Details for support")
    assert problem.index("Details for support") < problem.index("AADSTS7000215")


def test_an_empty_tenant_says_no_rooms_found_and_flags_nothing(app, login, world, rooms, mocked):
    answer_token(mocked)
    answer_room_lists(mocked)
    answer_rooms(mocked, [])
    page_html = find_rooms(app, login(world.a.admin), rooms).get_data(as_text=True)
    assert "No rooms found" in page_html and "Places directory" in page_html
    with app.app_context():
        assert missing_since("old-room@contoso.com") is None


# --- The flag on the room table ------------------------------------------------------------


def test_a_mapped_room_missing_from_a_full_listing_is_flagged_until_it_reappears(
    app, login, world, rooms, mocked, clock
):
    client = login(world.a.admin)
    answer_token(mocked)
    answer_room_lists(mocked)
    answer_rooms(mocked, TENANT_ROOMS[:1], TENANT_ROOMS[1:])
    page_html = find_rooms(app, client, rooms).get_data(as_text=True)
    assert "Rooms of the table not found in Microsoft 365" in page_html and "old-room@contoso.com" in page_html
    with app.app_context():
        assert missing_since("old-room@contoso.com") == clock.now
        assert missing_since("cf100@contoso.com") is None
        assert count(CalendarLink) == 2  # flagged, never removed

    table = client.get(rooms.base + "/rooms").get_data(as_text=True)
    old_row = re.search(r'<tr id="room-\d+">\s*<td class="mailbox">old-room@contoso.com.*?</td>', table, re.S)[0]
    assert "not found in Microsoft 365" in old_row
    assert "1 room(s) not found in Microsoft 365" in table
    cf100_row = re.search(r'<td class="mailbox">cf100@contoso.com.*?</td>', table, re.S)[0]
    assert "not found" not in cf100_row

    # A room list never speaks for the whole tenant: the room found in one while the
    # tenant's listing still lacks it stays flagged, since it was first missed.
    clock.advance(timedelta(minutes=10))
    mocked.reset()
    answer_room_lists(mocked, [{"displayName": "Annex", "emailAddress": "annex@contoso.com"}])
    answer_rooms(mocked, TENANT_ROOMS)
    answer_rooms(mocked, [room("old-room@contoso.com", "Old room")], url=rooms_in("annex@contoso.com"))
    find_rooms(app, client, rooms, "?list=annex@contoso.com")
    with app.app_context():
        assert missing_since("old-room@contoso.com") == clock.now - timedelta(minutes=10)
        assert missing_since("cf100@contoso.com") is None

    # The next full listing has it again: the flag goes.
    mocked.reset()
    answer_room_lists(mocked)
    answer_rooms(mocked, TENANT_ROOMS + [room("OLD-ROOM@contoso.com", "Old room")])
    find_rooms(app, client, rooms, "?list=all")
    with app.app_context():
        assert missing_since("old-room@contoso.com") is None
    assert "not found in Microsoft 365" not in client.get(rooms.base + "/rooms").get_data(as_text=True)


def test_an_incomplete_listing_flags_nothing(app, login, world, rooms, mocked, monkeypatch):
    monkeypatch.setattr(places, "MAX_PAGES", 1)
    answer_token(mocked)
    answer_room_lists(mocked)
    mocked.add(
        responses.GET,
        ROOMS_URL,
        json=page(TENANT_ROOMS[:1], f"{ROOMS_URL}?$top=100&$skiptoken=more"),
        match=[FIRST_PAGE],
    )
    page_html = find_rooms(app, login(world.a.admin), rooms).get_data(as_text=True)
    assert "The listing stopped after 1 rooms" in page_html
    with app.app_context():
        assert missing_since("old-room@contoso.com") is None


def test_changing_a_rooms_address_clears_its_flag(app, login, world, rooms, clock):
    link_id = rooms.links["old-room@contoso.com"]
    with app.app_context():
        db.session.get(CalendarLink, link_id).places_missing_since = clock.now
        db.session.commit()
    login(world.a.admin).post(
        f"{rooms.base}/rooms/{link_id}/edit", data={"upn": "new-room@contoso.com", "object_id": world.a.object}
    )
    with app.app_context():
        link = db.session.get(CalendarLink, link_id)
        assert (link.mailbox, link.places_missing_since) == ("new-room@contoso.com", None)


# --- Preview and apply ----------------------------------------------------------------------


def selection(rooms, world, *, typed=False):
    """cf200 to a new object, focus-1 to Hall, cf100 (mapped already) to Room A, phone unticked."""
    data = {
        "preview": "Preview",
        "rooms-0-pick": "y",
        "rooms-0-email": "cf200@contoso.com",
        "rooms-0-name": "Conf Room 200",
        "rooms-0-capacity": "40",
        "rooms-0-object_id": "",
        "rooms-1-pick": "y",
        "rooms-1-email": "focus-1@contoso.com",
        "rooms-1-name": "Focus 1",
        "rooms-1-capacity": "",
        "rooms-2-pick": "y",
        "rooms-2-email": "cf100@contoso.com",
        "rooms-2-name": "Conf Room 100",
        "rooms-2-object_id": str(world.a.object),
        "rooms-3-email": "phone@contoso.com",
        "rooms-3-name": "Phone",
        "rooms-3-object_id": "",
    }
    if typed:
        data["rooms-1-object"] = "hall"
    else:
        data["rooms-1-object_id"] = str(rooms.hall)
    return data


def confirmation(preview_html):
    """The fields of the preview's Apply form, as the browser would send them."""
    form = re.search(r'<form method="post" action="[^"]+/discover/import">(.*?)</form>', preview_html, re.S)[1]
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    }
    fields["apply"] = "Apply"
    return fields


def snapshot():
    return count(CalendarLink), count(BookableObject), count(Job), count(AuditEntry)


@pytest.mark.parametrize("typed", [False, True], ids=["chosen", "typed"])
def test_the_preview_shows_new_and_existing_objects_and_writes_nothing(app, login, world, rooms, typed):
    with app.app_context():
        before = snapshot()

    response = login(world.a.admin).post(rooms.imports, data=selection(rooms, world, typed=typed))

    assert response.status_code == 200
    page_html = response.get_data(as_text=True)
    summary = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page_html.split('id="import-summary">')[1].split("</p>")[0]))
    assert summary.strip() == "2 to add, of which 1 with a new object; 1 rejected. Nothing is saved until you apply."
    added = rows_of(page_html)
    assert "Conf Room 200" in added["cf200@contoso.com"] and "new object" in added["cf200@contoso.com"]
    assert "capacity 40" in added["cf200@contoso.com"]
    assert "<td>Hall</td>" in added["focus-1@contoso.com"] and "new object" not in added["focus-1@contoso.com"]
    rejected = page_html.split('id="rejected"')[1].split("</section>")[0]
    assert "Conf Room 100 &lt;cf100@contoso.com&gt;" in rejected
    assert "Already in the room table, mapped to Room A." in rejected
    assert "phone@contoso.com" not in page_html
    fields = confirmation(page_html)
    assert fields["rooms-0-email"] == "cf200@contoso.com" and fields["rooms-0-object_id"] == ""
    assert fields["rooms-1-object_id"] == str(rooms.hall)
    assert "rooms-2-email" not in fields  # rejected rooms do not travel to the confirmation
    with app.app_context():
        assert snapshot() == before


def test_applying_creates_the_objects_adds_the_rooms_and_queues_their_syncs(app, login, world, rooms):
    client = login(world.a.admin)
    preview = client.post(rooms.imports, data=selection(rooms, world)).get_data(as_text=True)

    response = client.post(rooms.imports, data=confirmation(preview))

    assert response.status_code == 302 and response.headers["Location"] == rooms.base + "/rooms"
    with app.app_context():
        created = db.session.scalar(db.select(BookableObject).where(BookableObject.name == "Conf Room 200"))
        assert (created.organisation_id, created.capacity) == (world.a.org, 40)
        links = dict(db.session.execute(db.select(CalendarLink.mailbox, CalendarLink.object_id)).all())
        assert links["cf200@contoso.com"] == created.id
        assert links["focus-1@contoso.com"] == rooms.hall
        assert links["cf100@contoso.com"] == world.a.object
        assert len(links) == 4
        new_ids = [
            str(db.session.scalar(db.select(CalendarLink.id).where(CalendarLink.mailbox == m)))
            for m in ("cf200@contoso.com", "focus-1@contoso.com")
        ]
        assert queued_jobs() == sorted(
            [("subscribe_link", key) for key in new_ids] + [("sync_link", key) for key in new_ids]
        )
        [(action, detail, who)] = audit_entries(rooms.id)
        assert (action, who) == ("rooms_imported", world.a.admin)
        assert detail.startswith("2 room(s) added from Microsoft 365, 1 object(s) created.")
        assert "cf200@contoso.com → Conf Room 200 (new object)" in detail
    table = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 room(s) added from Microsoft 365, 1 object(s) created" in table


def test_the_confirmation_is_checked_again(app, login, world, rooms):
    client = login(world.a.admin)
    preview = client.post(rooms.imports, data=selection(rooms, world)).get_data(as_text=True)
    # Meanwhile someone adds one of the rooms by hand, and creates an object with the other's name.
    client.post(rooms.base + "/rooms", data={"upn": "focus-1@contoso.com", "object_id": world.a.object})
    with app.app_context():
        db.session.add(BookableObject(organisation_id=world.a.org, name="conf room 200"))
        db.session.commit()
        before = snapshot()

    response = client.post(rooms.imports, data=confirmation(preview))

    page_html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "changed since the preview" in page_html
    assert "Already in the room table, mapped to Room A." in page_html
    assert "An object called “Conf Room 200” exists already" in page_html
    assert "Nothing to add." in page_html
    with app.app_context():
        assert snapshot() == before


def test_two_rooms_cannot_create_objects_of_the_same_name(app, login, world, rooms):
    data = {
        "preview": "Preview",
        "rooms-0-pick": "y",
        "rooms-0-email": "a@contoso.com",
        "rooms-0-name": "Meeting room",
        "rooms-1-pick": "y",
        "rooms-1-email": "b@contoso.com",
        "rooms-1-name": "MEETING ROOM",
        "rooms-2-pick": "y",
        "rooms-2-email": "not-an-address",
        "rooms-2-name": "Odd",
        "rooms-3-pick": "y",
        "rooms-3-email": "c@contoso.com",
        "rooms-3-object": "Ballroom",
    }
    page_html = login(world.a.admin).post(rooms.imports, data=data).get_data(as_text=True)
    assert list(rows_of(page_html)) == ["a@contoso.com"]
    assert "a@contoso.com creates an object called “MEETING ROOM” already" in page_html
    assert "“not-an-address” is not an e-mail address." in page_html
    assert "Unknown object “Ballroom”" in page_html


def test_nothing_ticked_goes_back_to_the_list(app, login, world, rooms):
    response = login(world.a.admin).post(
        rooms.imports, data={"preview": "Preview", "room_list": "bldg2@contoso.com", "rooms-0-email": "a@contoso.com"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == rooms.discover + "?list=bldg2@contoso.com"


def test_many_objects_turn_the_drop_down_into_a_text_field(app, login, world, rooms, mocked, monkeypatch):
    monkeypatch.setattr(discovery_views, "OBJECT_SELECT_LIMIT", 1)
    answer_token(mocked)
    answer_room_lists(mocked)
    answer_rooms(mocked, [room("hall@contoso.com", "Hall"), room("new@contoso.com", "New")])
    page_html = find_rooms(app, login(world.a.admin), rooms).get_data(as_text=True)
    assert (
        '<datalist id="object-names"><option value="Hall"></option><option value="Room A"></option></datalist>'
        in page_html
    )
    rows = rows_of(page_html)
    assert 'name="rooms-0-object" value="Hall" list="object-names"' in rows["hall@contoso.com"]
    assert "<select" not in page_html.split('class="discovered"')[1]


# --- Access ---------------------------------------------------------------------------------


def test_an_admin_of_another_organisation_gets_404_everywhere(app, login, world, rooms, mocked):
    with app.app_context():
        before = snapshot()
    client = login(world.b.admin)
    for org in (world.a.org, world.b.org):
        base = f"/orgs/{org}/integrations/{rooms.id}/rooms/discover"
        assert client.get(base).status_code == 404
        assert client.post(base).status_code == 404
        assert client.get(base + "?list=all").status_code == 404
        assert client.post(base + "/import", data=selection(rooms, world)).status_code == 404
        confirm = dict(selection(rooms, world), apply="Apply", digest="0" * 64)
        assert client.post(base + "/import", data=confirm).status_code == 404
    with app.app_context():
        assert snapshot() == before


def test_a_delegated_integration_has_no_room_discovery(app, login, world, rooms):
    with app.app_context():
        delegated = add_rooms_integration(world.a, auth_mode="delegated", name="Own calendar")
    client = login(world.a.admin)
    assert client.get(delegated.base + "/rooms/discover").status_code == 400
    assert client.post(delegated.base + "/rooms/discover").status_code == 400
    with app.app_context():
        assert count(Job) == 0


def test_the_forms_are_csrf_protected(app, world, rooms, mocked, database_url, instance_dir):
    from app import create_app

    strict_app = create_app(config_for(database_url, WTF_CSRF_ENABLED=True), instance_path=instance_dir)
    client = strict_app.test_client()
    with strict_app.app_context():
        user_id = db.session.scalar(db.select(User.id).where(User.email == world.a.admin))
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(user_id)
        flask_session["_fresh"] = True
    assert client.post(rooms.discover).status_code == 400  # no search queued without the token
    with strict_app.app_context():
        assert count(Job) == 0
        room_discovery.queue_discovery(db.session.get(Integration, rooms.id))
        db.session.commit()
        answer_token(mocked)
        answer_room_lists(mocked)
        answer_rooms(mocked, TENANT_ROOMS)
        run_queued_jobs(room_discovery.DISCOVER_ROOMS)
    page_html = client.get(rooms.discover).get_data(as_text=True)
    assert re.search(
        r'action="[^"]+/discover" class="find-rooms" id="find-rooms">\s*<input type="hidden" name="csrf_token"',
        page_html,
    )
    assert re.search(r'action="[^"]+/discover/import" novalidate>\s*<input type="hidden" name="csrf_token"', page_html)
    assert client.post(rooms.imports, data=selection(rooms, world)).status_code == 400
    confirm = dict(selection(rooms, world), apply="Apply", digest="0" * 64)
    assert client.post(rooms.imports, data=confirm).status_code == 400
    with strict_app.app_context():
        assert count(CalendarLink) == 2 and count(Job) == 0
        db.engine.dispose()
