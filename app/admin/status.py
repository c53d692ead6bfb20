"""Diagnosis pages: the sync log, the audit log, job retries, disconnecting, and support's overview."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

from app.admin import bp, calendar_health
from app.admin.forms import SyncLogFilterForm
from app.auth import audit_log
from app.auth.access import in_organisation_or_404, organisation_or_404, support_required
from app.extensions import db
from app.jobs import queue
from app.models import AuditEntry, CalendarLink, Integration, SyncLogEntry
from app.models.job import JOB_FAILED

LOG_LINES_PER_PAGE = 50
AUDIT_LINES_PER_PAGE = 50
OVERVIEW_PER_PAGE = 100


def _integration(org_id, integration_id):
    organisation = organisation_or_404(org_id)
    return organisation, in_organisation_or_404(Integration, organisation, integration_id)


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/log")
@login_required
def sync_log(org_id, integration_id):
    organisation, integration = _integration(org_id, integration_id)
    links = db.session.scalars(
        db.select(CalendarLink).where(CalendarLink.integration_id == integration.id).order_by(CalendarLink.mailbox)
    ).all()
    filters = SyncLogFilterForm(request.args)
    filters.set_choices(links)
    query = (
        db.select(SyncLogEntry)
        .where(SyncLogEntry.integration_id == integration.id)
        .options(db.joinedload(SyncLogEntry.link))
        .order_by(SyncLogEntry.created_at.desc(), SyncLogEntry.id.desc())
    )
    if filters.validate():
        if filters.room.data:
            query = query.where(SyncLogEntry.link_id == filters.room.data)
        if filters.action.data:
            query = query.where(SyncLogEntry.action == filters.action.data)
        if filters.only_errors.data:
            query = query.where(SyncLogEntry.is_error.is_(True))
    page = db.paginate(query, per_page=LOG_LINES_PER_PAGE, error_out=False)
    return render_template(
        "admin/sync_log.html",
        organisation=organisation,
        integration=integration,
        filters=filters,
        page=page,
        filter_args={name: value for name, value in request.args.items() if name != "page" and value},
    )


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/audit")
@login_required
def integration_audit(org_id, integration_id):
    organisation, integration = _integration(org_id, integration_id)
    return _render_audit(organisation, integration)


@bp.route("/orgs/<int:org_id>/audit")
@login_required
def organisation_audit(org_id):
    return _render_audit(organisation_or_404(org_id), None)


def _render_audit(organisation, integration):
    query = (
        db.select(AuditEntry)
        .where(AuditEntry.organisation_id == organisation.id)
        .options(db.joinedload(AuditEntry.integration))
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    )
    if integration is not None:
        query = query.where(AuditEntry.integration_id == integration.id)
    return render_template(
        "admin/audit_log.html",
        organisation=organisation,
        integration=integration,
        page=db.paginate(query, per_page=AUDIT_LINES_PER_PAGE, error_out=False),
        labels=audit_log.ACTION_LABELS,
    )


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/jobs/<int:job_id>/retry", methods=["POST"])
@login_required
def job_retry(org_id, integration_id, job_id):
    """Queue a parked job of one of this integration's calendars again."""
    organisation, integration = _integration(org_id, integration_id)
    job = calendar_health.job_of_integration(integration.id, job_id)
    if job is None:
        abort(404)
    if job.state != JOB_FAILED:
        flash("This job is queued or running already.", "info")
    else:
        description = f"{calendar_health.JOB_KIND_LABELS.get(job.kind, job.kind)} job {job.id} of calendar {job.key}"
        if queue.retry(job.id) is None:
            flash("This job is no longer parked: it was retried or finished meanwhile.", "info")
        else:
            audit_log.record(integration, audit_log.JOB_RETRIED, description + ".", commit=True)
            flash("The job is queued again.", "success")
    return redirect(url_for("admin.integration_detail", org_id=organisation.id, integration_id=integration.id))


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/disconnect/confirm")
@login_required
def disconnect_confirm(org_id, integration_id):
    """Disconnecting deletes the stored tokens: this page asks first, its button posts to the disconnect route."""
    organisation, integration = _integration(org_id, integration_id)
    return render_template("admin/disconnect.html", organisation=organisation, integration=integration)


@bp.route("/support/integrations")
@support_required
def support_overview():
    """Every integration of every organisation, the broken ones first."""
    rows = calendar_health.overview()
    page_number = max(request.args.get("page", 1, type=int) or 1, 1)
    pages = max((len(rows) + OVERVIEW_PER_PAGE - 1) // OVERVIEW_PER_PAGE, 1)
    page_number = min(page_number, pages)
    shown = rows[(page_number - 1) * OVERVIEW_PER_PAGE : page_number * OVERVIEW_PER_PAGE]
    return render_template(
        "admin/support_overview.html",
        rows=shown,
        total=len(rows),
        broken=sum(1 for row in rows if row.trouble < 3),
        page_number=page_number,
        pages=pages,
    )
