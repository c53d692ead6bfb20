"""Incident lists with their history: an organisation's for its admins, every one for support."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.alerts import bp, delivery
from app.alerts.incidents import acknowledge, history_query
from app.auth.access import in_organisation_or_404, organisation_or_404, support_required
from app.extensions import db
from app.models import Incident

INCIDENTS_PER_PAGE = 50


@bp.route("/orgs/<int:org_id>/incidents")
@login_required
def organisation_incidents(org_id):
    organisation = organisation_or_404(org_id)
    query = history_query(organisation_id=organisation.id, visible_to=current_user)
    return _render_list(query, organisation=organisation)


@bp.route("/orgs/<int:org_id>/incidents/<int:incident_id>/acknowledge", methods=["POST"])
@login_required
def organisation_acknowledge(org_id, incident_id):
    organisation = organisation_or_404(org_id)
    incident = in_organisation_or_404(Incident, organisation, incident_id)
    _acknowledge(incident)
    return redirect(_back_to(url_for("alerts.organisation_incidents", org_id=organisation.id)))


@bp.route("/incidents")
@support_required
def support_incidents():
    return _render_list(history_query(visible_to=current_user), organisation=None)


@bp.route("/incidents/<int:incident_id>/acknowledge", methods=["POST"])
@support_required
def support_acknowledge(incident_id):
    incident = db.get_or_404(Incident, incident_id)
    _acknowledge(incident)
    return redirect(_back_to(url_for("alerts.support_incidents")))


def _render_list(query, organisation):
    page = db.paginate(query, per_page=INCIDENTS_PER_PAGE, error_out=False)
    return render_template(
        "alerts/incident_list.html",
        organisation=organisation,
        page=page,
        email_enabled=delivery.email_enabled(),
        webhook_problems=delivery.webhook_problems([incident.id for incident in page.items]),
    )


def _acknowledge(incident):
    if acknowledge(incident, current_user):
        flash("Incident acknowledged: no more reminders. You still hear when it is resolved.", "success")
    elif incident.resolved_at is not None:
        flash("This incident is resolved already.", "info")
    else:
        flash(f"This incident was acknowledged already by {incident.acknowledged_by}.", "info")


def _back_to(default):
    """Return to the page the button was on, if it names a path on this site."""
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default
