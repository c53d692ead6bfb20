"""Full sync from the portal: a confirmation page per calendar and per integration, and the progress line.

Sync now reads the changes since the last sync; a full sync reads the whole window again.
Either is queued as a job (a click never waits on Graph); the page after it shows progress.
"""

from flask import flash, redirect, render_template, url_for
from flask_login import login_required
from flask_wtf import FlaskForm

from app.admin import bp
from app.admin.rooms import ROOM_TABLE_URL, _link_or_404
from app.auth import audit_log
from app.auth.access import in_organisation_or_404, organisation_or_404
from app.extensions import db
from app.jobs.handlers import enqueue_link_sync
from app.models import CalendarLink, Integration

INTEGRATION_URL = "/orgs/<int:org_id>/integrations/<int:integration_id>"


class FullSyncForm(FlaskForm):
    """No fields: the confirmation's button, with its CSRF token."""


@bp.route(ROOM_TABLE_URL + "/<int:link_id>/full-sync", methods=["GET", "POST"])
@login_required
def link_full_sync(org_id, integration_id, link_id):
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    link = _link_or_404(integration, link_id)
    form = FullSyncForm()
    if not link.enabled:
        flash(f"{link.mailbox} is disabled: enable it to sync it.", "error")
        return redirect(url_for("admin.integration_detail", org_id=org_id, integration_id=integration.id))
    if form.validate_on_submit():
        enqueue_link_sync(link.id, full=True)
        audit_log.record(integration, audit_log.FULL_SYNC_STARTED, f"{link.label}.")
        db.session.commit()
        flash(f"Full sync of {link.label} queued. Its progress shows under Status.", "success")
        return redirect(url_for("admin.integration_detail", org_id=org_id, integration_id=integration.id))
    action = url_for("admin.link_full_sync", org_id=org_id, integration_id=integration.id, link_id=link.id)
    return _confirmation(organisation, integration, [link], form, action, room=link)


@bp.route(INTEGRATION_URL + "/full-sync", methods=["GET", "POST"])
@login_required
def integration_full_sync(org_id, integration_id):
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    links = enabled_links(integration)
    form = FullSyncForm()
    if form.validate_on_submit():
        if not links:
            flash("No enabled calendar to sync: add or enable a room first.", "error")
        else:
            for link in links:
                enqueue_link_sync(link.id, full=True)
            names = ", ".join(link.label for link in links)
            audit_log.record(integration, audit_log.FULL_SYNC_STARTED, f"{len(links)} calendar(s): {names}.")
            db.session.commit()
            flash(f"Full sync of {len(links)} calendar(s) queued. Its progress shows under Status.", "success")
        return redirect(url_for("admin.integration_detail", org_id=org_id, integration_id=integration.id))
    action = url_for("admin.integration_full_sync", org_id=org_id, integration_id=integration.id)
    return _confirmation(organisation, integration, links, form, action)


def enabled_links(integration):
    return db.session.scalars(
        db.select(CalendarLink)
        .where(CalendarLink.integration_id == integration.id, CalendarLink.enabled.is_(True))
        .order_by(CalendarLink.mailbox)
    ).all()


def _confirmation(organisation, integration, links, form, action, room=None):
    return render_template(
        "admin/full_sync_confirm.html",
        organisation=organisation,
        integration=integration,
        links=links,
        room=room,
        form=form,
        action=action,
    )


@bp.app_template_global()
def full_sync_progress(integration):
    """The integration's calendars whose full round runs now, and the latest one that finished."""
    links = db.session.scalars(
        db.select(CalendarLink).where(CalendarLink.integration_id == integration.id).order_by(CalendarLink.mailbox)
    ).all()
    running = [link for link in links if link.full_sync_started_at is not None]
    finished = [link for link in links if link.full_sync_finished_at is not None and link not in running]
    latest = max(finished, key=lambda link: link.full_sync_finished_at, default=None)
    # A room is always named: a full sync asked for one room shows which one runs.
    return {"running": running, "latest": latest, "name_rooms": not integration.is_delegated}
