"""Room discovery: find the tenant's rooms in Microsoft 365, pick some, add them to the room table.

The rooms are read by a job, never inside a request: "Find rooms in Microsoft 365" POSTs
here, which queues the job (`app.connection.discovery`) and shows it pending, the page
refreshing itself, until the job has stored what it found. Browsing the room lists and
ticking rooms then works on those stored rooms. Picked rooms go through the bulk paste's
checks and preview, and nothing is written until the admin applies; the selection travels
in hidden fields and is checked again then. The import only writes to the database.
"""

from dataclasses import dataclass, field

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_required

from app.admin import bp, bulk_paste, calendar_health, room_changes
from app.admin.bulk_paste import MAX_OBJECT_NAME, Entry, NewObject
from app.admin.forms import RoomImportForm, is_mailbox_address
from app.admin.plan_flow import preview_or_apply
from app.admin.rooms import ROOM_TABLE_URL, objects_of, plan_basis, rooms_integration_or_404, when_synced
from app.connection import discovery as room_discovery
from app.extensions import db
from app.graph import places
from app.models import BookableObject, CalendarLink
from app.models.calendar_link import MAILBOX_ME

DISCOVER_URL = ROOM_TABLE_URL + "/discover"
IMPORT_URL = DISCOVER_URL + "/import"
#: The `list` argument that shows every room of the tenant.
ALL_ROOMS = "all"
#: Up to this many objects each room gets a drop-down; beyond it, a text field with suggestions
#: keeps the page small (300 rooms × 300 objects would be 90,000 options).
OBJECT_SELECT_LIMIT = 60
MAX_IMPORT = 1000


@dataclass(frozen=True)
class Row:
    """One room on the page: what Places says, and its row in the room table if it has one."""

    room: places.Room
    mapped_object: str | None = None
    mapped_enabled: bool = True


@dataclass
class Discovery:
    room_lists: list = field(default_factory=list)
    chosen: places.RoomList | None = None
    everything: bool = False
    listing: places.Listing | None = None
    problem: room_discovery.Problem | None = None

    @property
    def shows_rooms(self):
        return self.listing is not None and (self.everything or self.chosen is not None)


@bp.route(DISCOVER_URL, methods=["POST"])
@login_required
def room_discover_start(org_id, integration_id):
    """Queue a room discovery; the listing page shows it pending until the job stored the rooms."""
    _, integration = rooms_integration_or_404(org_id, integration_id)
    room_discovery.queue_discovery(integration)
    db.session.commit()
    back = _list_arg(request.form.get("list"))
    return redirect(url_for("admin.room_discover", org_id=org_id, integration_id=integration.id, **back))


@bp.route(DISCOVER_URL)
@login_required
def room_discover(org_id, integration_id):
    """The stored rooms of the tenant, of one room list, or (with room lists and none chosen) the room lists."""
    organisation, integration = rooms_integration_or_404(org_id, integration_id)
    wanted = request.args.get("list", "").strip().lower()
    progress = room_discovery.discovery_progress(integration)
    discovery = _discovery_from(progress.result, wanted) if progress.result else None
    listing = discovery.listing if discovery else None
    checked = listing is not None and discovery.chosen is None
    mapped = _mapped_rooms(integration)
    rows = [_row(room, mapped) for room in listing.rooms] if listing else []
    objects = objects_of(organisation)
    form = RoomImportForm(
        data={
            "room_list": wanted,
            "rooms": [
                _prefill(row.room, objects, tick=request.args.get("tick") == "all")
                for row in rows
                if row.mapped_object is None
            ],
        }
    )
    entries = iter(form.rooms)
    return render_template(
        "admin/room_discover.html",
        organisation=organisation,
        integration=integration,
        progress=progress,
        heartbeat=calendar_health.scheduler_heartbeat() if progress.pending else None,
        discovery=discovery,
        # Each room with its form entry; rooms in the table already have none.
        rows=[(row, None if row.mapped_object else next(entries).form) for row in rows],
        mapped_count=sum(1 for row in rows if row.mapped_object),
        form=form,
        objects=objects,
        object_select=len(objects) <= OBJECT_SELECT_LIMIT,
        wanted=wanted,
        missing=_missing_rooms(integration) if checked else [],
        permission=places.PERMISSION,
    )


def _discovery_from(found, wanted):
    """The page's view of what the job stored, for the room list asked for (`wanted`)."""
    discovery = Discovery(everything=wanted == ALL_ROOMS)
    if found.get("problem"):
        discovery.problem = room_discovery.Problem(**found["problem"])
        return discovery
    listings = {}
    for stored in found["room_lists"]:
        room_list = places.RoomList(stored["email"], stored["display_name"])
        discovery.room_lists.append(room_list)
        listings[room_list.email] = stored["listing"]
    if wanted and not discovery.everything:
        discovery.chosen = next((r for r in discovery.room_lists if r.email == wanted), None)
        if discovery.chosen is None:
            discovery.problem = room_discovery.Problem(
                room_discovery.PROBLEM_GRAPH,
                f"Microsoft 365 has no room list with the address {wanted}. Choose one below.",
            )
            return discovery
        discovery.listing = room_discovery.listing_from(listings[wanted])
    else:
        discovery.listing = room_discovery.listing_from(found["tenant"])
        discovery.everything = discovery.everything or not discovery.room_lists
    return discovery


def _mapped_rooms(integration):
    """{mailbox: (object name, enabled)} of the integration's rooms."""
    return {
        mailbox: (name, enabled)
        for mailbox, name, enabled in db.session.execute(
            db.select(CalendarLink.mailbox, BookableObject.name, CalendarLink.enabled)
            .join(BookableObject, CalendarLink.object_id == BookableObject.id)
            .where(CalendarLink.integration_id == integration.id, CalendarLink.mailbox != MAILBOX_ME)
        )
    }


def _missing_rooms(integration):
    return db.session.scalars(
        db.select(CalendarLink)
        .where(CalendarLink.integration_id == integration.id, CalendarLink.places_missing_since.is_not(None))
        .options(db.joinedload(CalendarLink.object))
        .order_by(CalendarLink.mailbox)
    ).all()


def _row(room, mapped):
    found = mapped.get(room.email)
    if found is None:
        return Row(room)
    return Row(room, mapped_object=found[0], mapped_enabled=found[1])


def _prefill(room, objects, tick):
    """A room not in the table yet: mapped to the object of the same name if there is one, else to a new object."""
    same_name = [o for o in objects if o.name.strip().lower() == room.display_name.lower()]
    chosen = same_name[0] if len(same_name) == 1 else None
    return {
        "pick": tick,
        "email": room.email,
        "name": room.display_name[:MAX_OBJECT_NAME],
        "capacity": "" if room.capacity is None else str(room.capacity),
        "object_id": str(chosen.id) if chosen else "",
        "object": chosen.name if chosen else "",
    }


# -- preview and apply --------------------------------------------------------------------


@bp.route(IMPORT_URL, methods=["POST"])
@login_required
def room_import(org_id, integration_id):
    """POST with `preview` shows what adding the ticked rooms would do; with `apply` it plans again and writes."""
    organisation, integration = rooms_integration_or_404(org_id, integration_id)
    form = RoomImportForm()
    back = url_for(
        "admin.room_discover", org_id=org_id, integration_id=integration.id, **_list_arg(form.room_list.data)
    )
    if not form.validate_on_submit():
        flash("The selection could not be read; find the rooms again.", "error")
        return redirect(back)
    picked = [entry.form for entry in form.rooms if entry.form.pick.data]
    if not picked:
        flash("Tick at least one room to add.", "warning")
        return redirect(back)
    if len(picked) > MAX_IMPORT:
        flash(f"At most {MAX_IMPORT} rooms at a time; pick them one room list at a time.", "warning")
        return redirect(back)
    rooms = {row.email.data.strip().lower(): row for row in picked if row.email.data}
    template = dict(organisation=organisation, integration=integration, form=form, rooms=rooms, back=back)
    return preview_or_apply(
        form,
        lambda: _plan(organisation, integration, picked),
        preview=lambda plan: render_template("admin/room_import_preview.html", plan=plan, **template),
        apply=lambda plan: room_changes.apply_import(integration, plan),
        has_changes=lambda plan: bool(plan.added),
        nothing="Nothing to add.",
        changed="The room table or the objects changed since the preview. Check the new preview, then apply again.",
        done=lambda plan: (
            f"{len(plan.added)} room(s) added from Microsoft 365, {len(plan.new_objects)} object(s) created; "
            f"{when_synced(integration, one=False)}."
        ),
        table_url=url_for("admin.room_table", org_id=org_id, integration_id=integration.id),
    )


def _list_arg(room_list):
    room_list = (room_list or "").strip().lower()
    return {"list": room_list} if room_list else {}


def _plan(organisation, integration, picked):
    return bulk_paste.plan_entries(
        _entries(picked), **plan_basis(organisation, integration), is_address=is_mailbox_address, move_existing=False
    )


def _entries(picked):
    """The ticked rooms as entries of a plan: an object chosen, typed, or to be created."""
    for number, row in enumerate(picked, start=1):
        address = (row.email.data or "").strip()
        email = address.lower()
        name = " ".join((row.name.data or "").split())[:MAX_OBJECT_NAME] or email
        chosen = (row.object_id.data or "").strip()
        typed = (row.object.data or "").strip() if not chosen else ""
        new_object = None if chosen or typed else NewObject(name, _capacity(row.capacity.data))
        yield Entry(
            number,
            f"{name} <{address}>" if name != email else address,
            email,
            address_text=address,
            object_text=typed,
            object_id=int(chosen) if chosen.isdigit() else (-1 if chosen else None),
            new_object=new_object,
        )


def _capacity(value):
    text = (value or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None
