from datetime import datetime, time, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError

from app import clock
from app.auth.access import in_organisation_or_404, organisation_or_404, support_required, visible_organisations
from app.bookings.service import save_booking
from app.clock import local_to_utc, utc_to_local
from app.extensions import db
from app.models import (
    BookableObject,
    Booking,
    BookingStatus,
    CalendarLink,
    Customer,
    Integration,
    Organisation,
    OutboundEvent,
)
from app.orgs import bp
from app.orgs.attention import needs_attention
from app.orgs.forms import BookingForm, OrganisationForm
from app.orgs.provisioning import create_organisation
from app.orgs.resources import RESOURCES
from app.orgs.timeline import DAY, WEEK, build_timeline, window_for
from app.orgs.timeline_form import BookingFilterForm, TimelineForm

BOOKINGS_PER_PAGE = 50


@bp.route("/")
@login_required
def home():
    if current_user.is_support:
        return render_template("orgs/support_home.html", attention=needs_attention(current_user))
    return redirect(url_for("orgs.organisation_detail", org_id=current_user.organisation_id))


@bp.route("/orgs")
@support_required
def organisation_list():
    organisations = db.session.scalars(visible_organisations()).all()
    return render_template("orgs/organisation_list.html", organisations=organisations)


@bp.route("/orgs/new", methods=["GET", "POST"])
@support_required
def organisation_new():
    form = OrganisationForm()
    if form.validate_on_submit():
        if _organisation_name_taken(form.name.data.strip()):
            form.name.errors.append("An organisation with this name exists already.")
        else:
            organisation = create_organisation(form.name.data.strip(), form.timezone.data.strip())
            organisation.alert_webhook_url = form.alert_webhook_url.data
            db.session.commit()
            flash(f"Organisation {organisation.name} created with the default booking statuses.", "success")
            return redirect(url_for("orgs.organisation_detail", org_id=organisation.id))
    return render_template("orgs/organisation_form.html", form=form, organisation=None)


@bp.route("/orgs/<int:org_id>")
@login_required
def organisation_detail(org_id):
    organisation = organisation_or_404(org_id)
    counts = {
        kind: db.session.scalar(
            db.select(db.func.count()).select_from(resource.model).where(resource.model.organisation_id == org_id)
        )
        for kind, resource in RESOURCES.items()
    }
    counts["bookings"] = db.session.scalar(
        db.select(db.func.count()).select_from(Booking).where(Booking.organisation_id == org_id)
    )
    counts["integrations"] = db.session.scalar(
        db.select(db.func.count()).select_from(Integration).where(Integration.organisation_id == org_id)
    )
    return render_template("orgs/organisation_detail.html", organisation=organisation, counts=counts)


@bp.route("/orgs/<int:org_id>/edit", methods=["GET", "POST"])
@login_required
def organisation_edit(org_id):
    organisation = organisation_or_404(org_id)
    form = OrganisationForm(obj=organisation)
    if form.validate_on_submit():
        name = form.name.data.strip()
        if name != organisation.name and _organisation_name_taken(name):
            form.name.errors.append("An organisation with this name exists already.")
        else:
            organisation.name = name
            organisation.timezone = form.timezone.data.strip()
            organisation.alert_webhook_url = form.alert_webhook_url.data
            db.session.commit()
            flash("Organisation saved.", "success")
            return redirect(url_for("orgs.organisation_detail", org_id=org_id))
    return render_template("orgs/organisation_form.html", form=form, organisation=organisation)


def _organisation_name_taken(name):
    return db.session.scalar(db.select(Organisation.id).where(Organisation.name == name)) is not None


@bp.route("/orgs/<int:org_id>/<any(objects, customers, statuses):kind>")
@login_required
def resource_list(org_id, kind):
    organisation = organisation_or_404(org_id)
    resource = RESOURCES[kind]
    rows = db.session.scalars(
        db.select(resource.model).where(resource.model.organisation_id == org_id).order_by(*resource.order_by)
    ).all()
    return render_template("orgs/resource_list.html", organisation=organisation, resource=resource, rows=rows)


@bp.route("/orgs/<int:org_id>/<any(objects, customers, statuses):kind>/new", methods=["GET", "POST"])
@bp.route("/orgs/<int:org_id>/<any(objects, customers, statuses):kind>/<int:row_id>/edit", methods=["GET", "POST"])
@login_required
def resource_edit(org_id, kind, row_id=None):
    organisation = organisation_or_404(org_id)
    resource = RESOURCES[kind]
    row = in_organisation_or_404(resource.model, organisation, row_id) if row_id else None
    form = resource.form(obj=row)
    if form.validate_on_submit():
        if row is None:
            row = resource.model(organisation_id=org_id)
            db.session.add(row)
        form.populate_obj(row)
        for attribute, normalise in resource.normalise.items():
            setattr(row, attribute, normalise(getattr(row, attribute)))
        if isinstance(row.name, str):
            row.name = row.name.strip()
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            form.name.errors.append(f"Another {resource.singular} has this name already.")
        else:
            flash(f"{resource.singular.capitalize()} {row.name} saved.", "success")
            return redirect(url_for("orgs.resource_list", org_id=org_id, kind=kind))
    return render_template("orgs/resource_form.html", organisation=organisation, resource=resource, form=form, row=row)


@bp.route("/orgs/<int:org_id>/bookings")
@login_required
def booking_list(org_id):
    organisation = organisation_or_404(org_id)
    # The table's own filters (start, end) keep links made before the timeline working.
    if request.args.get("view") == "table" or "start" in request.args or "end" in request.args:
        return _booking_table(organisation)
    return _timeline_page(organisation, "orgs/booking_list.html", "orgs.booking_list", dict(org_id=org_id))


@bp.route("/orgs/<int:org_id>/rooms/<int:link_id>")
@login_required
def room_timeline(org_id, link_id):
    organisation = organisation_or_404(org_id)
    link = db.session.scalar(
        db.select(CalendarLink)
        .join(Integration, CalendarLink.integration_id == Integration.id)
        .where(CalendarLink.id == link_id, Integration.organisation_id == organisation.id)
        .options(db.joinedload(CalendarLink.object))
    )
    if link is None:
        abort(404)
    integration = db.session.get(Integration, link.integration_id)
    return _timeline_page(
        organisation,
        "orgs/room_timeline.html",
        "orgs.room_timeline",
        dict(org_id=org_id, link_id=link_id),
        fixed_object=link.object_id,
        link=link,
        integration=integration,
    )


def _filter_form(form_class, organisation):
    """A bookings query form with the organisation's objects and statuses to choose from, checked."""
    objects = db.session.scalars(
        db.select(BookableObject)
        .where(BookableObject.organisation_id == organisation.id, BookableObject.active.is_(True))
        .order_by(BookableObject.name)
    ).all()
    statuses = db.session.scalars(
        db.select(BookingStatus)
        .where(BookingStatus.organisation_id == organisation.id)
        .order_by(BookingStatus.position, BookingStatus.name)
    ).all()
    form = form_class(request.args)
    form.fill_choices(objects, statuses)
    form.validate()
    return form


def _timeline_page(organisation, template, endpoint, route_args, fixed_object=None, **context):
    form = _filter_form(TimelineForm, organisation)
    # Through the module, so a test that moves the clock moves "today" too.
    today = utc_to_local(clock.utcnow(), organisation.timezone).date()
    # Each refused value is shown with its error and replaced by its default; the others still apply.
    day = form.date.data if form.date.data and not form.date.errors else today
    span = form.span.data if form.span.data in (DAY, WEEK) and not form.span.errors else DAY
    chosen_object = fixed_object or form.chosen_object()
    chosen_statuses = form.chosen_statuses()
    window = window_for(day, span, organisation.timezone)
    timeline = build_timeline(
        organisation, window, object_ids=[chosen_object] if chosen_object else None, status_ids=chosen_statuses
    )

    def link(**change):
        args = dict(route_args, date=window.first_day.isoformat(), span=span)
        if chosen_object and not fixed_object:
            args["object"] = chosen_object
        if chosen_statuses:
            args["status"] = chosen_statuses
        args.update(change)
        return url_for(endpoint, **args)

    days = timedelta(days=window.days)
    links = {
        "previous": link(date=(window.first_day - days).isoformat()),
        "next": link(date=(window.first_day + days).isoformat()),
        "today": link(date=today.isoformat()),
        DAY: link(span=DAY, date=(today if window.first_day <= today <= window.last_day else window.first_day)),
        WEEK: link(span=WEEK),
    }
    status_code = 400 if form.errors else 200
    return (
        render_template(
            template,
            organisation=organisation,
            form=form,
            timeline=timeline,
            links=links,
            today=today,
            fixed_object=fixed_object,
            **context,
        ),
        status_code,
    )


def _booking_table(organisation):
    org_id = organisation.id
    filters = _filter_form(BookingFilterForm, organisation)
    today = utc_to_local(clock.utcnow(), organisation.timezone).date()
    if not (request.args.keys() - {"view", "page", "object", "status"}):
        filters.start.data = today
        filters.end.data = today + timedelta(days=30)
    query = (
        db.select(Booking)
        .where(Booking.organisation_id == org_id)
        .options(db.joinedload(Booking.object), db.joinedload(Booking.status), db.joinedload(Booking.customer))
        .order_by(Booking.start_at, Booking.id)
    )
    # A refused bound is shown with its error and left out; the other one still narrows the list.
    if filters.chosen_object():
        query = query.where(Booking.object_id == filters.chosen_object())
    if filters.chosen_statuses():
        query = query.where(Booking.status_id.in_(filters.chosen_statuses()))
    if filters.start.data and not filters.start.errors:
        query = query.where(Booking.end_at > _local_midnight(filters.start.data, organisation))
    if filters.end.data and not filters.end.errors:
        query = query.where(Booking.start_at < _local_midnight(filters.end.data + timedelta(days=1), organisation))
    page = db.paginate(query, per_page=BOOKINGS_PER_PAGE, error_out=False)
    return render_template("orgs/booking_list.html", organisation=organisation, filters=filters, page=page)


def _local_midnight(day, organisation):
    return local_to_utc(datetime.combine(day, time.min), organisation.timezone)


@bp.route("/orgs/<int:org_id>/bookings/new", methods=["GET", "POST"])
@bp.route("/orgs/<int:org_id>/bookings/<int:booking_id>/edit", methods=["GET", "POST"])
@login_required
def booking_edit(org_id, booking_id=None):
    organisation = organisation_or_404(org_id)
    booking = in_organisation_or_404(Booking, organisation, booking_id) if booking_id else None
    form = BookingForm(obj=_booking_form_data(booking, organisation), timezone_name=organisation.timezone)
    _fill_booking_choices(form, organisation, booking)
    if form.validate_on_submit():
        candidate = booking or Booking(organisation_id=org_id)
        candidate.object_id = form.object_id.data
        candidate.customer_id = form.customer_id.data or None
        candidate.status_id = form.status_id.data
        candidate.status = db.session.get(BookingStatus, form.status_id.data)
        candidate.start_at = local_to_utc(form.start_at.data, organisation.timezone)
        candidate.end_at = local_to_utc(form.end_at.data, organisation.timezone)
        candidate.remark = (form.remark.data or "").strip()
        errors = save_booking(candidate)
        if not errors:
            flash(f"Booking {candidate.id} saved.", "success")
            return redirect(url_for("orgs.booking_list", org_id=org_id))
        for error in errors:
            form[error.field].errors.append(error.message)
    outlook = (
        db.session.scalars(db.select(OutboundEvent).where(OutboundEvent.booking_id == booking.id)).all()
        if booking
        else []
    )
    return render_template(
        "orgs/booking_form.html", organisation=organisation, form=form, booking=booking, outlook=outlook
    )


def _booking_form_data(booking, organisation):
    if booking is None:
        return None

    class FormData:
        object_id = booking.object_id
        customer_id = booking.customer_id or 0
        status_id = booking.status_id
        start_at = utc_to_local(booking.start_at, organisation.timezone).replace(tzinfo=None)
        end_at = utc_to_local(booking.end_at, organisation.timezone).replace(tzinfo=None)
        remark = booking.remark

    return FormData


def _fill_booking_choices(form, organisation, booking):
    objects = db.session.scalars(
        db.select(BookableObject)
        .where(BookableObject.organisation_id == organisation.id)
        .where((BookableObject.active.is_(True)) | (BookableObject.id == (booking.object_id if booking else -1)))
        .order_by(BookableObject.name)
    ).all()
    customers = db.session.scalars(
        db.select(Customer).where(Customer.organisation_id == organisation.id).order_by(Customer.name)
    ).all()
    statuses = db.session.scalars(
        db.select(BookingStatus)
        .where(BookingStatus.organisation_id == organisation.id)
        .order_by(BookingStatus.position, BookingStatus.name)
    ).all()
    if not objects or not statuses:
        # Without these the form cannot be valid; say what to create instead of showing empty lists.
        if request.method == "POST":
            abort(400, "Create an object and a booking status first.")
    form.object_id.choices = [(o.id, o.name) for o in objects]
    form.customer_id.choices = [(0, "— none —")] + [
        (c.id, f"{c.name} <{c.email}>" if c.email else c.name) for c in customers
    ]
    form.status_id.choices = [(s.id, s.name) for s in statuses]
