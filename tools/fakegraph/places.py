"""Graph v1.0 Places: the tenant's rooms and room lists, as *Find rooms in Microsoft 365* reads them.

* `GET /places/microsoft.graph.room`: every room mailbox of the caller's tenant;
* `GET /places/microsoft.graph.roomlist`: the tenant's room lists;
* `GET /places/{room list address}/microsoft.graph.roomlist/rooms`: the rooms of one list.
  Graph addresses a room list by its e-mail address only; its `id` answers 404 here.

Reading needs `Place.Read.All` (application permission or delegated scope). Pages hold 100
places unless `$top` says otherwise; `$skip` pages on, and `@odata.nextLink` says how.
Room ids are fresh per process, as Graph's are not stable enough to key on either.
"""

from flask import Blueprint, jsonify, request

from .access import GraphProblem, admit, authenticate, world
from .state import ROOM

bp = Blueprint("places", __name__, url_prefix="/v1.0/places")

PERMISSION = "place.read.all"
DEFAULT_PAGE = 100
DENIED = "Access is denied. Check credentials and try again."


@bp.route("/microsoft.graph.room")
def rooms():
    tenant_id = _reader()
    with world().lock:
        found = [_room(m) for m in world().mailboxes_of(tenant_id) if m.kind == ROOM]
    return _page(found, "room")


@bp.route("/microsoft.graph.roomlist")
def room_lists():
    tenant_id = _reader()
    with world().lock:
        found = [_room_list(r) for r in world().room_lists_of(tenant_id)]
    return _page(found, "roomList")


@bp.route("/<list_address>/microsoft.graph.roomlist/rooms")
def rooms_in_list(list_address):
    tenant_id = _reader()
    the_world = world()
    with the_world.lock:
        room_list = the_world.room_lists.get(list_address.lower())
        if room_list is None or room_list.tenant_id != tenant_id:
            raise GraphProblem(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        members = [the_world.mailbox(upn) for upn in room_list.rooms]
        found = [_room(m) for m in members if m is not None and m.kind == ROOM]
    return _page(found, "room")


def _reader():
    principal = authenticate()
    admit(None)
    if PERMISSION not in principal.scopes:
        raise GraphProblem(403, "ErrorAccessDenied", DENIED)
    return principal.tenant_id


def _room(mailbox):
    return {
        "@odata.type": "#microsoft.graph.room",
        "id": mailbox.object_id,
        "emailAddress": mailbox.upn,
        "displayName": mailbox.display_name,
        "capacity": mailbox.capacity,
        "building": mailbox.building,
        "floorLabel": mailbox.floor_label,
        "floorNumber": mailbox.floor_number,
        "bookingType": "standard",
        "isWheelChairAccessible": False,
        "tags": [],
    }


def _room_list(room_list):
    return {
        "@odata.type": "#microsoft.graph.roomList",
        "id": room_list.id,
        "emailAddress": room_list.email,
        "displayName": room_list.display_name,
    }


def _page(items, kind):
    try:
        skip = int(request.args.get("$skip", 0))
        top = int(request.args.get("$top", 0)) or DEFAULT_PAGE
    except ValueError:
        raise GraphProblem(400, "BadRequest", "$skip and $top must be whole numbers.") from None
    if skip < 0 or top < 1:
        raise GraphProblem(400, "BadRequest", "$skip and $top must not be negative.")
    shown = {
        "@odata.context": f"{request.url_root}v1.0/$metadata#places/microsoft.graph.{kind}",
        "value": items[skip : skip + top],
    }
    if skip + top < len(items):
        shown["@odata.nextLink"] = f"{request.base_url}?$top={top}&$skip={skip + top}"
    return jsonify(shown)
