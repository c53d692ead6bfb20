from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

from app import clock
from app.admin import bp, calendar_health
from app.admin.calendar_object import follow_object
from app.admin.forms import SWITCH_METHOD, IntegrationForm
from app.admin.mode_switch import disconnect_for_switch, plan_switch, switch_needs_confirmation
from app.auth import audit_log
from app.auth.access import in_organisation_or_404, organisation_or_404
from app.connection.check import ConnectionReport, connection_test_progress, queue_connection_test
from app.connection.verify import queue_settings_check, settings_check_pending
from app.extensions import db
from app.graph.tokens import forget_application_token
from app.models import BookableObject, BookingStatus, CalendarLink, Integration
from app.models.calendar_link import MAILBOX_ME
from app.models.integration import CONNECTION_CONNECTED
from app.oauth.flow import connect_blocker, disconnect_progress
from app.public_urls import lifecycle_notification_url, notification_url, oauth_redirect_uri

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
#: The form field that confirms a switch of connection method on the confirmation page.
CONFIRM_SWITCH = "confirm_switch"
TEST_NEEDS_APPLICATION_MODE = (
    "Test connection is for the application method; a delegated integration connects by signing in."
)


@bp.route("/orgs/<int:org_id>/integrations")
@login_required
def integration_list(org_id):
    organisation = organisation_or_404(org_id)
    integrations = db.session.scalars(
        db.select(Integration).where(Integration.organisation_id == org_id).order_by(Integration.name)
    ).all()
    return render_template(
        "admin/integration_list.html",
        organisation=organisation,
        integrations=integrations,
        calendars=calendar_health.calendar_counts([i.id for i in integrations]),
    )


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>")
@login_required
def integration_detail(org_id, integration_id):
    """The integration's status at a glance: connection, calendars, recent bookings, jobs, scheduler."""
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    own_calendar = db.session.scalar(
        db.select(CalendarLink).where(CalendarLink.integration_id == integration.id, CalendarLink.mailbox == MAILBOX_ME)
    )
    return render_template(
        "admin/integration_detail.html",
        organisation=organisation,
        integration=integration,
        own_calendar=own_calendar,
        calendars=calendar_health.calendar_counts([integration.id])[integration.id],
        activity=calendar_health.booking_activity(integration.id, clock.utcnow()),
        jobs=calendar_health.job_figures(integration.id),
        failed_jobs=calendar_health.failed_jobs(integration.id),
        heartbeat=calendar_health.scheduler_heartbeat(),
        health_of=calendar_health.health_of,
        connect_blocker=connect_blocker(integration),
        disconnecting=disconnect_progress(integration),
        checking_settings=not integration.is_delegated and settings_check_pending(integration),
        redirect_uri=oauth_redirect_uri(),
        notification_url=notification_url(),
        lifecycle_url=lifecycle_notification_url(),
    )


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/test", methods=["POST"])
@login_required
def integration_test(org_id, integration_id):
    """Queue a connection test; its page shows it pending, then its report."""
    integration = _test_integration_or_404(org_id, integration_id)
    queue_connection_test(integration)
    db.session.commit()
    return redirect(url_for("admin.integration_test_report", org_id=org_id, integration_id=integration.id))


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/test")
@login_required
def integration_test_report(org_id, integration_id):
    """The latest connection test: queued or running (the page refreshes itself), failed, or its stored report."""
    integration = _test_integration_or_404(org_id, integration_id)
    progress = connection_test_progress(integration)
    return render_template(
        "admin/connection_test.html",
        organisation=integration.organisation,
        integration=integration,
        progress=progress,
        report=ConnectionReport.from_dict(progress.result) if progress.result else None,
        heartbeat=calendar_health.scheduler_heartbeat() if progress.pending else None,
    )


def _test_integration_or_404(org_id, integration_id):
    integration = in_organisation_or_404(Integration, organisation_or_404(org_id), integration_id)
    if integration.is_delegated:
        abort(400, TEST_NEEDS_APPLICATION_MODE)
    return integration


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
    if request.method == "POST" and SWITCH_METHOD in request.form:
        # Only shows the chosen method's fields again: nothing is validated or saved.
        return _integration_form_page(organisation, integration, form, switched=True)
    if form.validate_on_submit():
        created = integration is None
        switching = not created and switch_needs_confirmation(integration, form.auth_mode.data)
        if switching and request.form.get(CONFIRM_SWITCH) != "1":
            return _confirm_switch_page(organisation, integration, form)
        if created:
            integration = Integration(organisation_id=org_id)
            db.session.add(integration)
        before = {} if created else _shown_settings(integration)
        had_secret = integration.has_client_secret
        credentials_before = None if created else _credentials(integration)
        if switching:
            disconnect_for_switch(integration)
        _apply_form(form, integration, statuses)
        db.session.flush()
        object_change = None if created else follow_object(integration)
        _audit_settings(form, integration, created, before, had_secret, object_change)
        checking = _needs_settings_check(integration, credentials_before)
        if checking:
            queue_settings_check(integration)
        db.session.commit()
        if switching:
            forget_application_token(integration.id)
        flash(_saved_message(integration, switching, object_change, checking), "success")
        return redirect(url_for("admin.integration_detail", org_id=org_id, integration_id=integration.id))
    return _integration_form_page(organisation, integration, form)


def _integration_form_page(organisation, integration, form, switched=False):
    return render_template(
        "admin/integration_form.html",
        organisation=organisation,
        integration=integration,
        form=form,
        method=form.chosen_method,
        # A password field is never filled back in, so a secret typed before the switch must be typed again.
        secret_dropped=switched and bool(form.client_secret.data),
        switch_field=SWITCH_METHOD,
        redirect_uri=oauth_redirect_uri(),
        notification_url=notification_url(),
    )


def _confirm_switch_page(organisation, integration, form):
    """Nothing is saved yet: show what the switch undoes, with the submitted settings carried in hidden fields.

    The client secret is never sent back to the browser: a newly typed one must be typed
    again on this page, else the stored one is kept.
    """
    carried = [
        (name, value)
        for name, value in request.form.items(multi=True)
        if name not in ("csrf_token", "client_secret", "submit", SWITCH_METHOD, CONFIRM_SWITCH)
    ]
    return render_template(
        "admin/integration_mode_switch.html",
        organisation=organisation,
        integration=integration,
        form=form,
        plan=plan_switch(integration),
        new_mode=form.auth_mode.data,
        carried=carried,
        secret_typed=bool(form.client_secret.data),
        confirm_field=CONFIRM_SWITCH,
    )


def _credentials(integration):
    return (integration.auth_mode, integration.tenant_id, integration.client_id, integration.client_secret)


def _needs_settings_check(integration, credentials_before):
    """Application settings are checked with Microsoft when new, changed, or not yet working."""
    if integration.is_delegated:
        return False
    return _credentials(integration) != credentials_before or integration.connection_state != CONNECTION_CONNECTED


def _saved_message(integration, switched, object_change, checking):
    parts = [f"Integration {integration.name} saved."]
    if switched:
        parts.append(
            f"It now uses the {integration.auth_mode} method and is disconnected; "
            "deleting the former calendars' subscriptions at Microsoft is queued."
        )
    if object_change:
        parts.append(object_change.sentence())
    if checking:
        parts.append(
            "Checking the settings with Microsoft is queued: once they work, the integration is connected "
            "and its enabled rooms are subscribed and synced."
        )
    elif integration.is_delegated and integration.connection_state != CONNECTION_CONNECTED:
        parts.append("Connect with Microsoft to start the sync.")
    return " ".join(parts)


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
    set_aside = form.fields_set_aside()
    for name in PLAIN_SETTINGS:
        if name in set_aside:
            continue
        value = form[name].data
        setattr(integration, name, value.strip() if isinstance(value, str) else value)
    integration.tenant_id = form.tenant_id.data.strip()
    integration.client_id = form.client_id.data.strip().lower()
    # The secret is write-only: an empty field keeps the stored one.
    if form.client_secret.data:
        integration.client_secret = form.client_secret.data
    if "object_id" not in set_aside:
        integration.object_id = form.object_id.data or None
    for field in SINGLE_STATUSES:
        setattr(integration, field, form[field].data or None)
    by_id = {s.id: s for s in statuses}
    for field, relation in STATUS_SETS.items():
        if field in set_aside:
            continue
        setattr(integration, relation, [by_id[i] for i in form[field].data if i in by_id])


def _shown_settings(integration):
    """The settings as the audit log shows them: names rather than ids, never the secret."""
    shown = {name: getattr(integration, name) for name in PLAIN_SETTINGS}
    shown.update(tenant_id=integration.tenant_id, client_id=integration.client_id)
    shown["object_id"] = _name_of(BookableObject, integration.object_id)
    for field in SINGLE_STATUSES:
        shown[field] = _name_of(BookingStatus, getattr(integration, field))
    for field, relation in STATUS_SETS.items():
        shown[field] = sorted(s.name for s in getattr(integration, relation))
    return shown


def _name_of(model, row_id):
    row = db.session.get(model, row_id) if row_id else None
    return row.name if row else None


def _audit_settings(form, integration, created, before, had_secret, object_change=None):
    replaced = bool(form.client_secret.data)
    if created:
        detail = f"{integration.name}, {integration.auth_mode} method" + (", client secret set" if replaced else "")
        audit_log.record(integration, audit_log.INTEGRATION_CREATED, detail + ".")
        return
    # In the order of the form; the secret is not among them and is never shown.
    labels = {field.name: field.label.text for field in form if field.name in before}
    changes = audit_log.describe_changes(before, _shown_settings(integration), labels)
    if replaced:
        changes.append("client secret replaced" if had_secret else "client secret set")
    if object_change:
        changes.append(object_change.describe())
    if changes:
        audit_log.record(integration, audit_log.SETTINGS_SAVED, "; ".join(changes) + ".")
