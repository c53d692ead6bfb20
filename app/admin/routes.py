from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlalchemy.exc import IntegrityError

from app.access import in_organisation_or_404, organisation_or_404
from app.admin import bp
from app.admin.forms import IntegrationForm, RoomForm
from app.connection_test import run_connection_test
from app.extensions import db
from app.models import BookableObject, BookingStatus, CalendarLink, Integration
from app.models.calendar_link import MAILBOX_ME
from app.oauth.flow import connect_blocker
from app.public_urls import lifecycle_notification_url, notification_url, oauth_redirect_uri
from app.subscription_jobs import activate_link, deactivate_link

ROOMS_NEED_APPLICATION_MODE = (
    "Rooms belong to integrations with the application method; "
    "a delegated integration syncs the connected account's own calendar."
)

STATUS_SETS = {
    "lock_status_ids": "lock_statuses",
    "create_entry_status_ids": "create_calendar_entry_statuses",
    "delete_on_status_ids": "delete_on_statuses",
}
SINGLE_STATUSES = ("cancel_status_id", "new_booking_status_id", "status_with_customer_id")
PLAIN_SETTINGS = (
    "name",
    "auth_mode",
    "ires_field",
    "allow_booking_update",
    "ignore_validation_errors",
    "teams_meeting",
    "add_customer_attendee",
    "window_past_days",
    "window_future_days",
)


@bp.route("/orgs/<int:org_id>/integrations")
@login_required
def integration_list(org_id):
    organisation = organisation_or_404(org_id)
    integrations = db.session.scalars(
        db.select(Integration).where(Integration.organisation_id == org_id).order_by(Integration.name)
    ).all()
    return render_template("admin/integration_list.html", organisation=organisation, integrations=integrations)


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>")
@login_required
def integration_detail(org_id, integration_id):
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    return _render_detail(organisation, integration)


def _render_detail(organisation, integration, room_form=None):
    links = db.session.scalars(
        db.select(CalendarLink).where(CalendarLink.integration_id == integration.id).order_by(CalendarLink.mailbox)
    ).all()
    if room_form is None and not integration.is_delegated:
        room_form = _room_form(organisation)
    return render_template(
        "admin/integration_detail.html",
        organisation=organisation,
        integration=integration,
        own_calendar=next((link for link in links if link.mailbox == MAILBOX_ME), None),
        rooms=[link for link in links if link.mailbox != MAILBOX_ME],
        room_form=room_form,
        connect_blocker=connect_blocker(integration),
        redirect_uri=oauth_redirect_uri(),
        notification_url=notification_url(),
        lifecycle_url=lifecycle_notification_url(),
    )


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/test", methods=["POST"])
@login_required
def integration_test(org_id, integration_id):
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    if integration.is_delegated:
        abort(400, "Test connection is for the application method; a delegated integration connects by signing in.")
    report = run_connection_test(integration)
    return render_template(
        "admin/connection_test.html", organisation=organisation, integration=integration, report=report
    )


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/rooms", methods=["POST"])
@login_required
def room_add(org_id, integration_id):
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    if integration.is_delegated:
        abort(400, ROOMS_NEED_APPLICATION_MODE)
    form = _room_form(organisation)
    if form.validate_on_submit():
        if _add_room(integration, form.upn.data, form.object_id.data):
            flash(f"Room {form.upn.data} added.", "success")
            return redirect(url_for("admin.integration_detail", org_id=org_id, integration_id=integration.id))
        form.upn.errors.append("This room is in the list already.")
    return _render_detail(organisation, integration, room_form=form)


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/rooms/<int:link_id>/remove", methods=["GET", "POST"])
@login_required
def room_remove(org_id, integration_id, link_id):
    """GET asks for confirmation; only the POST of that page removes the room."""
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    link = db.session.get(CalendarLink, link_id)
    if link is None or link.integration_id != integration.id:
        abort(404)
    if link.mailbox == MAILBOX_ME:
        abort(400, "The connected account's own calendar is not a room: disconnect the integration instead.")
    if request.method == "POST":
        mailbox = link.mailbox
        deactivate_link(link)
        db.session.delete(link)
        db.session.commit()
        flash(f"Room {mailbox} removed. Its bookings stay.", "success")
        return redirect(url_for("admin.integration_detail", org_id=org_id, integration_id=integration.id))
    return render_template("admin/room_remove.html", organisation=organisation, integration=integration, link=link)


def _room_form(organisation):
    objects = db.session.scalars(
        db.select(BookableObject).where(BookableObject.organisation_id == organisation.id).order_by(BookableObject.name)
    ).all()
    form = RoomForm()
    form.set_choices(objects)
    return form


def _add_room(integration, upn, object_id):
    """Add a room link; False when the integration has this mailbox already."""
    taken = db.session.scalar(
        db.select(CalendarLink.id).where(CalendarLink.integration_id == integration.id, CalendarLink.mailbox == upn)
    )
    if taken is not None:
        return False
    link = CalendarLink(integration_id=integration.id, mailbox=upn, object_id=object_id)
    db.session.add(link)
    try:
        db.session.flush()
        activate_link(link.id)
        db.session.commit()
    except IntegrityError:
        # The same room added from another tab an instant earlier.
        db.session.rollback()
        return False
    return True


@bp.route("/orgs/<int:org_id>/integrations/new", methods=["GET", "POST"])
@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/edit", methods=["GET", "POST"])
@login_required
def integration_edit(org_id, integration_id=None):
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id) if integration_id else None
    statuses = db.session.scalars(
        db.select(BookingStatus).where(BookingStatus.organisation_id == org_id).order_by(BookingStatus.position)
    ).all()
    objects = db.session.scalars(
        db.select(BookableObject).where(BookableObject.organisation_id == org_id).order_by(BookableObject.name)
    ).all()
    form = IntegrationForm(data=_form_data(integration, statuses) if integration else _defaults(statuses))
    form.set_choices(statuses, objects)
    if form.validate_on_submit():
        if integration is None:
            integration = Integration(organisation_id=org_id)
            db.session.add(integration)
        _apply_form(form, integration, statuses)
        db.session.commit()
        flash(f"Integration {integration.name} saved.", "success")
        return redirect(url_for("admin.integration_detail", org_id=org_id, integration_id=integration.id))
    return render_template(
        "admin/integration_form.html",
        organisation=organisation,
        integration=integration,
        form=form,
        redirect_uri=oauth_redirect_uri(),
        notification_url=notification_url(),
    )


def _defaults(statuses):
    """Sensible starting values for the default status set of a new organisation."""
    by_name = {s.name.lower(): s.id for s in statuses}
    return {
        "cancel_status_id": by_name.get("cancelled", 0),
        "new_booking_status_id": by_name.get("confirmed", 0),
        "create_entry_status_ids": [by_name["confirmed"]] if "confirmed" in by_name else [],
        "delete_on_status_ids": [by_name["cancelled"]] if "cancelled" in by_name else [],
    }


def _form_data(integration, statuses):
    data = {name: getattr(integration, name) for name in PLAIN_SETTINGS}
    data.update(
        tenant_id=integration.tenant_id,
        client_id=integration.client_id,
        object_id=integration.object_id or 0,
    )
    for field in SINGLE_STATUSES:
        data[field] = getattr(integration, field) or 0
    for field, relation in STATUS_SETS.items():
        data[field] = [s.id for s in getattr(integration, relation)]
    return data


def _apply_form(form, integration, statuses):
    for name in PLAIN_SETTINGS:
        value = form[name].data
        setattr(integration, name, value.strip() if isinstance(value, str) else value)
    integration.tenant_id = form.tenant_id.data.strip()
    integration.client_id = form.client_id.data.strip().lower()
    # The secret is write-only: an empty field keeps the stored one.
    if form.client_secret.data:
        integration.client_secret = form.client_secret.data
    integration.object_id = form.object_id.data or None
    for field in SINGLE_STATUSES:
        setattr(integration, field, form[field].data or None)
    by_id = {s.id: s for s in statuses}
    for field, relation in STATUS_SETS.items():
        setattr(integration, relation, [by_id[i] for i in form[field].data if i in by_id])
