"""The room table of an application-mode integration: list, add, edit, enable, remove, paste, sync now."""

from urllib.parse import parse_qsl

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlalchemy.exc import IntegrityError

from app.admin import bp, bulk_paste, calendar_health, room_changes
from app.admin.forms import ROOM_SORTS, BulkPasteForm, RoomEditForm, RoomFilterForm, RoomForm, is_mailbox_address
from app.admin.plan_flow import preview_or_apply
from app.auth.access import in_organisation_or_404, organisation_or_404
from app.extensions import db
from app.jobs.handlers import enqueue_link_sync
from app.models import BookableObject, CalendarLink, Integration
from app.models.calendar_link import MAILBOX_ME
from app.models.integration import CONNECTION_CONNECTED

ROOMS_PER_PAGE = 50
ROOMS_NEED_APPLICATION_MODE = (
    "Rooms belong to integrations with the application method; "
    "a delegated integration syncs the connected account's own calendar."
)
#: Query arguments of the room table that its row buttons carry back after a change.
TABLE_ARGS = ("q", "status", "enabled", "sort", "dir", "page")
ROOM_TABLE_URL = "/orgs/<int:org_id>/integrations/<int:integration_id>/rooms"


def rooms_integration_or_404(org_id, integration_id):
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    if integration.is_delegated:
        abort(400, ROOMS_NEED_APPLICATION_MODE)
    return organisation, integration


def when_synced(integration, one=True):
    """How a flash says when newly active rooms start syncing: queued only when the integration can run it now."""
    if integration.connection_state == CONNECTION_CONNECTED:
        return "its subscription and first sync are queued" if one else "their subscriptions and first syncs are queued"
    return (
        "it is" if one else "they are"
    ) + " subscribed and synced once the integration is connected (saving working settings connects it)"


def _link_or_404(integration, link_id):
    link = db.session.get(CalendarLink, link_id)
    if link is None or link.integration_id != integration.id:
        abort(404)
    return link


def _room_or_404(integration, link_id):
    link = _link_or_404(integration, link_id)
    if link.is_me:
        abort(400, "The connected account's own calendar is not a room: disconnect the integration instead.")
    return link


def objects_of(organisation):
    return db.session.scalars(
        db.select(BookableObject).where(BookableObject.organisation_id == organisation.id).order_by(BookableObject.name)
    ).all()


def plan_basis(organisation, integration):
    """What a paste or import plan is checked against: the integration's rooms and the organisation's objects."""
    rooms = {
        mailbox: (link_id, object_id)
        for link_id, mailbox, object_id in db.session.execute(
            db.select(CalendarLink.id, CalendarLink.mailbox, CalendarLink.object_id).where(
                CalendarLink.integration_id == integration.id
            )
        )
    }
    return {"rooms": rooms, "objects": [(o.id, o.name) for o in objects_of(organisation)]}


def _room_form(organisation, form_class=RoomForm, **kwargs):
    form = form_class(**kwargs)
    form.set_choices(objects_of(organisation))
    return form


def _back_to_table(organisation, integration):
    """The room table as the admin left it: the filters, sort and page the row button carried."""
    carried = dict(parse_qsl(request.form.get("return_to", "")))
    kept = {name: carried[name] for name in TABLE_ARGS if carried.get(name)}
    return redirect(url_for("admin.room_table", org_id=organisation.id, integration_id=integration.id, **kept))


# -- the table ---------------------------------------------------------------------------


@bp.route(ROOM_TABLE_URL)
@login_required
def room_table(org_id, integration_id):
    organisation, integration = rooms_integration_or_404(org_id, integration_id)
    return _render_table(organisation, integration, _room_form(organisation))


def _render_table(organisation, integration, room_form, status=200):
    filters = RoomFilterForm(request.args)
    filters_valid = filters.validate()
    sort = filters.sort.data if filters.sort.data in ROOM_SORTS else "upn"
    descending = filters.dir.data == "desc"
    page = db.paginate(
        _room_query(integration, filters if filters_valid else None, sort, descending),
        per_page=ROOMS_PER_PAGE,
        error_out=False,
    )
    return (
        render_template(
            "admin/room_table.html",
            organisation=organisation,
            integration=integration,
            filters=filters,
            sort=sort,
            descending=descending,
            page=page,
            health_of=calendar_health.health_of,
            calendars=calendar_health.calendar_counts([integration.id])[integration.id],
            room_form=room_form,
            missing_in_places=db.session.scalar(
                db.select(db.func.count())
                .select_from(CalendarLink)
                .where(CalendarLink.integration_id == integration.id, CalendarLink.places_missing_since.is_not(None))
            ),
            filter_args={name: request.args[name] for name in ("q", "status", "enabled") if request.args.get(name)},
        ),
        status,
    )


def _room_query(integration, filters, sort, descending):
    state = calendar_health.link_health()
    query = (
        db.select(CalendarLink)
        .join(BookableObject, CalendarLink.object_id == BookableObject.id)
        .where(CalendarLink.integration_id == integration.id, CalendarLink.mailbox != MAILBOX_ME)
        .options(db.contains_eager(CalendarLink.object))
    )
    if filters is not None:
        text = (filters.q.data or "").strip()
        if text:
            query = query.where(
                CalendarLink.mailbox.icontains(text, autoescape=True)
                | BookableObject.name.icontains(text, autoescape=True)
            )
        if filters.status.data:
            query = query.where(state == filters.status.data)
        if filters.enabled.data:
            query = query.where(CalendarLink.enabled.is_(filters.enabled.data == "yes"))
    column = {
        "upn": CalendarLink.mailbox,
        "object": db.func.lower(BookableObject.name),
        "last_sync": CalendarLink.last_sync_at,
        "status": state,
    }[sort]
    order = column.desc() if descending else column.asc()
    if sort == "last_sync":
        # Never synced reads as the oldest sync: first when ascending, last when descending.
        order = order.nulls_last() if descending else order.nulls_first()
    return query.order_by(order, CalendarLink.mailbox)


# -- one room ----------------------------------------------------------------------------


@bp.route(ROOM_TABLE_URL, methods=["POST"])
@login_required
def room_add(org_id, integration_id):
    organisation, integration = rooms_integration_or_404(org_id, integration_id)
    form = _room_form(organisation)
    if form.validate_on_submit():
        if not room_changes.room_taken(integration, form.upn.data):
            try:
                room_changes.add_room(integration, form.upn.data, form.object_id.data)
                db.session.commit()
            except IntegrityError:
                # The same room added from another tab an instant earlier.
                db.session.rollback()
            else:
                flash(f"Room {form.upn.data} added; {when_synced(integration)}.", "success")
                return redirect(url_for("admin.room_table", org_id=org_id, integration_id=integration.id))
        form.upn.errors.append("This room is in the list already.")
    return _render_table(organisation, integration, form)


@bp.route(ROOM_TABLE_URL + "/<int:link_id>/edit", methods=["GET", "POST"])
@login_required
def room_edit(org_id, integration_id, link_id):
    organisation, integration = rooms_integration_or_404(org_id, integration_id)
    link = _room_or_404(integration, link_id)
    form = _room_form(organisation, RoomEditForm, data={"upn": link.mailbox, "object_id": link.object_id})
    if form.validate_on_submit():
        if room_changes.room_taken(integration, form.upn.data, other_than=link.id):
            form.upn.errors.append("Another room of this integration has this address.")
        else:
            changes = room_changes.edit_room(link, form.upn.data, form.object_id.data)
            try:
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                form.upn.errors.append("Another room of this integration has this address.")
            else:
                flash(f"Room {link.mailbox} saved." if changes else "Nothing changed.", "success")
                return redirect(url_for("admin.room_table", org_id=org_id, integration_id=integration.id))
    return render_template(
        "admin/room_edit.html", organisation=organisation, integration=integration, link=link, form=form
    )


@bp.route(ROOM_TABLE_URL + "/<int:link_id>/<any(enable, disable):change>", methods=["POST"])
@login_required
def room_enable(org_id, integration_id, link_id, change):
    organisation, integration = rooms_integration_or_404(org_id, integration_id)
    link = _room_or_404(integration, link_id)
    enabled = change == "enable"
    subscribed = bool(link.subscription_id)
    if room_changes.set_enabled(link, enabled):
        db.session.commit()
        if enabled:
            flash(f"Room {link.mailbox} enabled; {when_synced(integration)}.", "success")
        else:
            queued = "; deleting its subscription at Microsoft is queued." if subscribed else "."
            flash(f"Room {link.mailbox} disabled: it is no longer synced{queued}", "success")
    return _back_to_table(organisation, integration)


@bp.route(ROOM_TABLE_URL + "/<int:link_id>/remove", methods=["GET", "POST"])
@login_required
def room_remove(org_id, integration_id, link_id):
    """GET asks for confirmation; only the POST of that page removes the room."""
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    link = _room_or_404(integration, link_id)
    if request.method == "POST":
        mailbox, subscribed = link.mailbox, bool(link.subscription_id)
        room_changes.remove_room(link)
        db.session.commit()
        queued = "; deleting its subscription at Microsoft is queued." if subscribed else "."
        flash(f"Room {mailbox} removed. Its bookings stay{queued}", "success")
        return _back_to_table(organisation, integration)
    return render_template(
        "admin/room_remove.html",
        organisation=organisation,
        integration=integration,
        link=link,
        return_to=request.query_string.decode(),
    )


@bp.route(ROOM_TABLE_URL + "/<int:link_id>/sync", methods=["POST"])
@login_required
def link_sync(org_id, integration_id, link_id):
    """Queue a sync of one calendar; the job pool runs it, never this request."""
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    link = _link_or_404(integration, link_id)
    if not link.enabled:
        flash(f"{link.mailbox} is disabled: enable it to sync it.", "error")
    else:
        enqueue_link_sync(link.id)
        db.session.commit()
        flash(f"Sync of {link.label} queued.", "success")
    if request.form.get("from") == "status":
        return redirect(url_for("admin.integration_detail", org_id=org_id, integration_id=integration.id))
    return _back_to_table(organisation, integration)


# -- bulk paste --------------------------------------------------------------------------


@bp.route(ROOM_TABLE_URL + "/paste", methods=["GET", "POST"])
@login_required
def room_paste(org_id, integration_id):
    """Paste many rooms: POST with `preview` shows the plan; POST with `apply` makes it again and writes it."""
    organisation, integration = rooms_integration_or_404(org_id, integration_id)
    form = BulkPasteForm()
    template = dict(organisation=organisation, integration=integration, form=form)
    if not form.validate_on_submit():
        return render_template("admin/room_paste.html", **template)
    if bulk_paste.count_lines(form.rooms.data) > bulk_paste.MAX_LINES:
        form.rooms.errors.append(f"At most {bulk_paste.MAX_LINES} lines at a time; paste the list in parts.")
        return render_template("admin/room_paste.html", **template)
    return preview_or_apply(
        form,
        lambda: _plan(organisation, integration, form.rooms.data),
        preview=lambda plan: render_template("admin/room_paste_preview.html", plan=plan, **template),
        apply=lambda plan: room_changes.apply_paste(integration, plan),
        has_changes=lambda plan: plan.has_changes,
        nothing="Nothing to add or change.",
        changed="The room table changed since the preview. Check the new preview, then apply again.",
        done=lambda plan: (
            f"{len(plan.added)} room(s) added, {len(plan.changed)} changed"
            + (f"; {when_synced(integration, one=False)}." if plan.added else ".")
        ),
        table_url=url_for("admin.room_table", org_id=org_id, integration_id=integration.id),
    )


def _plan(organisation, integration, text):
    return bulk_paste.plan_paste(text, **plan_basis(organisation, integration), is_address=is_mailbox_address)
