"""Places: the rooms and room lists *Find rooms in Microsoft 365* reads, paged, behind Place.Read.All."""

import pytest

from app.graph import places

from .conftest import CLIENT_ID, ROOM, ROOM_2, TENANT

HALL = "hall@contoso.example"
BUILDING_LIST = "building-a@contoso.example"


@pytest.fixture
def placed(stand):
    """The stand with Place.Read.All granted, a described room and a room list of two rooms."""
    stand.control(
        f"tenants/{TENANT}/apps", {"client_id": CLIENT_ID, "client_secret": "s2", "permissions": ["Place.Read.All"]}
    )
    stand.control(
        f"tenants/{TENANT}/mailboxes",
        {"upn": HALL, "kind": "room", "display_name": "Hall", "building": "A", "floor_label": "Ground", "capacity": 80},
    )
    stand.control(
        f"tenants/{TENANT}/roomlists", {"email": BUILDING_LIST, "display_name": "Building A", "rooms": [HALL, ROOM]}
    )
    return stand


class StandClient:
    """The product's paging contract (`iter_pages`) over the stand-in's test client."""

    def __init__(self, stand, token):
        self.stand, self.token = stand, token

    def iter_pages(self, path, params=None):
        link = path
        while link:
            answer = self.stand.get(link, self.token, query_string=params)
            assert answer.status_code == 200, answer.get_json()
            page = answer.get_json()
            yield page
            link, params = page.get("@odata.nextLink"), None


def app_token(stand):
    answer = stand.token(
        grant_type="client_credentials",
        client_id=CLIENT_ID,
        client_secret="s2",
        scope="https://graph.microsoft.com/.default",
    )
    return answer.get_json()["access_token"]


def test_the_product_lists_every_room_of_the_tenant_with_what_places_says(placed):
    listing = places.list_rooms(StandClient(placed, app_token(placed)))
    assert listing.complete
    found = {room.email: room for room in listing.rooms}
    assert set(found) == {HALL, ROOM, ROOM_2, "vault@contoso.example"}
    assert (found[HALL].display_name, found[HALL].building, found[HALL].floor, found[HALL].capacity) == (
        "Hall",
        "A",
        "Ground",
        80,
    )


def test_room_lists_are_listed_and_their_rooms_read_by_address(placed):
    client = StandClient(placed, app_token(placed))
    assert places.list_room_lists(client) == [places.RoomList(BUILDING_LIST, "Building A")]
    assert [room.email for room in places.list_rooms_in(client, BUILDING_LIST).rooms] == [HALL, ROOM]


def test_a_room_list_named_by_its_id_is_not_found(placed):
    token = app_token(placed)
    listed = placed.get("places/microsoft.graph.roomlist", token).get_json()["value"][0]
    answer = placed.get(f"places/{listed['id']}/microsoft.graph.roomlist/rooms", token)
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "ErrorItemNotFound"


def test_pages_follow_top_and_skip_with_an_absolute_next_link(placed):
    token = app_token(placed)
    first = placed.get("places/microsoft.graph.room", token, query_string={"$top": "3"}).get_json()
    assert len(first["value"]) == 3
    assert first["@odata.nextLink"].startswith("http://localhost/v1.0/places/microsoft.graph.room?")
    second = placed.get(first["@odata.nextLink"], token).get_json()
    assert len(second["value"]) == 1 and "@odata.nextLink" not in second
    emails = [item["emailAddress"] for item in first["value"] + second["value"]]
    assert len(set(emails)) == 4


def test_without_place_read_all_places_answer_access_denied(stand):
    answer = stand.get("places/microsoft.graph.room", stand.app_token())
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "ErrorAccessDenied"


def test_a_room_list_of_unknown_rooms_is_refused(stand):
    answer = stand.client.post(
        f"/_control/tenants/{TENANT}/roomlists", json={"email": BUILDING_LIST, "rooms": ["nowhere@contoso.example"]}
    )
    assert answer.status_code == 400
    assert "nowhere@contoso.example" in answer.get_json()["error"]
