"""The tenant's rooms and room lists, read from the Graph Places API.

Rooms are keyed by their e-mail address: Graph says a place's ``id`` may change when
the mailbox or the tenant's configuration changes. Fields are read leniently, because
the documented examples and real tenants differ from the schema (``capacity`` arrives
as ``"50"``, ``building`` and ``floorNumber`` are often missing). Needs the
``Place.Read.All`` permission; without it Graph answers 403.
"""

from dataclasses import dataclass, field
from urllib.parse import quote

ROOMS_PATH = "places/microsoft.graph.room"
ROOM_LISTS_PATH = "places/microsoft.graph.roomlist"
#: Graph's default page size for places, asked for explicitly.
PAGE_SIZE = 100
#: A listing stops after this many pages (10,000 places) and counts as incomplete.
MAX_PAGES = 100
PERMISSION = "Place.Read.All"


@dataclass(frozen=True)
class Room:
    """One room mailbox as Places describes it; ``email`` is lower-case."""

    email: str
    display_name: str
    capacity: int | None = None
    building: str | None = None
    floor: str | None = None
    floor_number: int | None = None

    def sort_key(self):
        return (
            self.building is None,
            (self.building or "").lower(),
            self.floor_number is None,
            self.floor_number or 0,
            (self.floor or "").lower(),
            self.display_name.lower(),
            self.email,
        )


@dataclass(frozen=True)
class RoomList:
    """A room list (usually one building); Graph addresses it by its e-mail address."""

    email: str
    display_name: str


@dataclass
class Listing:
    """The rooms one listing returned, sorted by building, floor and name.

    ``complete`` is False when the listing stopped at :data:`MAX_PAGES`; ``skipped``
    counts places without an e-mail address, which cannot be mapped.
    """

    rooms: list = field(default_factory=list)
    complete: bool = True
    skipped: int = 0


def rooms_in_list_path(room_list_email):
    """The path of a room list's rooms. The address is percent-encoded except for ``@``."""
    return f"places/{quote(room_list_email, safe='@')}/microsoft.graph.roomlist/rooms"


def list_rooms(client):
    """Every room of the tenant (``GET places/microsoft.graph.room``), all pages."""
    return _listing(client, ROOMS_PATH)


def list_rooms_in(client, room_list_email):
    """The rooms of one room list, all pages. Never a complete view of the tenant."""
    return _listing(client, rooms_in_list_path(room_list_email))


def list_room_lists(client):
    """The tenant's room lists that have an e-mail address, sorted by name."""
    found = {}
    for item in _collect(client, ROOM_LISTS_PATH)[0]:
        email = _address(item.get("emailAddress")) if isinstance(item, dict) else None
        if email and email not in found:
            found[email] = RoomList(email, _text(item.get("displayName")) or email)
    return sorted(found.values(), key=lambda room_list: (room_list.display_name.lower(), room_list.email))


def parse_room(item):
    """A :class:`Room` from one Places item, or ``None`` when it has no usable e-mail address."""
    if not isinstance(item, dict):
        return None
    email = _address(item.get("emailAddress"))
    if not email:
        return None
    floor_number = _integer(item.get("floorNumber"))
    floor = _text(item.get("floorLabel")) or (str(floor_number) if floor_number is not None else None)
    capacity = _integer(item.get("capacity"))
    return Room(
        email=email,
        display_name=_text(item.get("displayName")) or email,
        capacity=capacity if capacity is None or capacity >= 0 else None,
        building=_text(item.get("building")),
        floor=floor,
        floor_number=floor_number,
    )


def _listing(client, path):
    items, complete = _collect(client, path)
    listing = Listing(complete=complete)
    seen = set()
    for item in items:
        room = parse_room(item)
        if room is None:
            listing.skipped += 1
        elif room.email not in seen:
            seen.add(room.email)
            listing.rooms.append(room)
    listing.rooms.sort(key=Room.sort_key)
    return listing


def _collect(client, path):
    """(items of every page, whether the last page was reached), following ``@odata.nextLink``."""
    items = []
    for number, page in enumerate(client.iter_pages(path, params={"$top": PAGE_SIZE}), start=1):
        items.extend(page.get("value") or [])
        if number >= MAX_PAGES and page.get("@odata.nextLink"):
            return items, False
    return items, True


def _address(value):
    return value.strip().lower() if isinstance(value, str) and "@" in value else None


def _text(value):
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _integer(value):
    """An int from an int, an integral float or a numeric string; anything else gives ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None
