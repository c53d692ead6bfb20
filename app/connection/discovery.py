"""Room discovery as a job: the tenant's rooms and room lists read from Places and stored for the portal.

"Find rooms in Microsoft 365" queues this job (:func:`queue_discovery`) and its page shows
what the job stored: the room lists, every room of the tenant and the rooms of each list,
or the problem that stopped it, in words an admin can act on. The page then browses and
imports from the stored rooms without calling Graph. A complete listing of the tenant's
rooms also records which rooms of the table it lacked (`room_changes.record_places_presence`).
"""

import logging
from dataclasses import asdict, dataclass

from app import clock
from app.connection import reports
from app.extensions import db
from app.graph import places, tokens
from app.graph.errors import GraphError, GraphForbidden, GraphNotFound
from app.graph.tokens import ReconnectRequired, TokenError
from app.jobs.handlers import handler
from app.models import Integration
from app.models.integration_report import REPORT_ROOM_DISCOVERY

log = logging.getLogger(__name__)

#: The job kind of a room discovery; its key is the integration id.
DISCOVER_ROOMS = "discover_rooms"

PROBLEM_PERMISSION = "permission"
PROBLEM_TOKEN = "token"
PROBLEM_GRAPH = "graph"


@dataclass(frozen=True)
class Problem:
    """Why the rooms could not be listed, in words an admin can act on."""

    kind: str
    message: str
    code: str | None = None
    request_id: str | None = None
    #: The error as recorded, for the portal's one mapping of errors to plain words.
    raw: str | None = None


def queue_discovery(integration):
    """Ask for a room discovery of *integration*; the job runs it. Joins the caller's transaction."""
    reports.request_report(integration, REPORT_ROOM_DISCOVERY, DISCOVER_ROOMS)


def discovery_progress(integration):
    """How far the latest room discovery of *integration* got (see :class:`app.connection.reports.Progress`)."""
    return reports.progress_of(integration.id, REPORT_ROOM_DISCOVERY, DISCOVER_ROOMS)


@handler(DISCOVER_ROOMS)
def run_discovery(key, payload):
    """List the rooms of integration *key*'s tenant and store them for the page. Commits."""
    integration = db.session.get(Integration, int(key))
    if integration is None or integration.is_delegated:
        return  # removed, or switched to signing in, since the click
    answering = reports.latest_request(integration.id, REPORT_ROOM_DISCOVERY)
    found = discover(integration)
    tenant = found.get("tenant")
    # Only a complete listing of the whole tenant says a room is gone; an empty one means
    # the tenant's Places directory is not set up, not that every room left.
    if tenant and tenant["complete"] and tenant["rooms"]:
        # Imported here: the admin package's views import this module.
        from app.admin import room_changes

        present = {room["email"] for room in tenant["rooms"]}
        room_changes.record_places_presence(integration, present, clock.utcnow())
    reports.store_result(integration.id, REPORT_ROOM_DISCOVERY, answering, found)
    db.session.commit()


def discover(integration):
    """Read the room lists, the tenant's rooms and each list's rooms; return them as stored for the page.

    The result is ``{"problem": ..., "room_lists": [...], "tenant": listing}``, each room list
    with its own ``listing``; a listing holds ``rooms`` (as :class:`places.Room` fields),
    ``complete`` and ``skipped``.
    """
    client = tokens.graph_client_for(integration)
    try:
        room_lists = places.list_room_lists(client)
        tenant = places.list_rooms(client)
        listed = [(room_list, _rooms_of_list(client, room_list)) for room_list in room_lists]
    except TokenError as failure:
        return {"problem": asdict(_token_problem(failure))}
    except GraphForbidden as error:
        return {"problem": asdict(Problem(PROBLEM_PERMISSION, error.message, error.code, error.request_id))}
    except GraphError as error:
        label = error.code or (f"HTTP {error.status}" if error.status else "No answer")
        message = f"{label}: {error.message}"
        return {"problem": asdict(Problem(PROBLEM_GRAPH, message, error.code, error.request_id, raw=str(error)))}
    return {
        "problem": None,
        "tenant": _stored(tenant),
        "room_lists": [
            {"email": room_list.email, "display_name": room_list.display_name, "listing": _stored(listing)}
            for room_list, listing in listed
            if listing is not None
        ],
    }


def _rooms_of_list(client, room_list):
    try:
        return places.list_rooms_in(client, room_list.email)
    except GraphNotFound:
        # The list went away between reading the lists and reading its rooms.
        log.info("Room list %s vanished while its rooms were read", room_list.email)
        return None


def _stored(listing):
    return {
        "rooms": [asdict(room) for room in listing.rooms],
        "complete": listing.complete,
        "skipped": listing.skipped,
    }


def listing_from(stored):
    """A :class:`places.Listing` from its stored form."""
    return places.Listing(
        rooms=[places.Room(**room) for room in stored["rooms"]], complete=stored["complete"], skipped=stored["skipped"]
    )


def _token_problem(failure):
    if isinstance(failure, ReconnectRequired):
        return Problem(
            PROBLEM_TOKEN,
            f"Microsoft issued no token: {failure.reason}. "
            "Check the tenant id, client id and client secret in the settings.",
            raw=str(failure),
        )
    return Problem(PROBLEM_TOKEN, f"No token: {failure}. Try again in a few minutes.", raw=str(failure))
