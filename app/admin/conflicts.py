"""The *Not booked from Outlook* card of the status page and its *Try again* button."""

from flask import abort, flash, redirect, url_for
from flask_login import current_user, login_required

from app.admin import bp
from app.auth import audit_log
from app.auth.access import in_organisation_or_404, organisation_or_404
from app.extensions import db
from app.models import Integration, SyncConflict
from app.sync import conflicts
from app.sync.conflict_retry import enqueue_conflict_retry, retry_pending

# The soonest appointments; a longer list is a sign of a wrong setting, not of work to click through.
LISTED = 100


@bp.app_template_global()
def conflicts_of(integration):
    """The integration's open conflicts and which of them have *Try again* queued, for `admin/_conflicts.html`."""
    if not current_user.is_authenticated or not current_user.can_access(integration.organisation_id):
        return {"conflicts": [], "retrying": set(), "total": 0}
    rows = conflicts.open_conflicts(integration.id, limit=LISTED)
    total = conflicts.open_conflict_counts([integration.id]).get(integration.id, 0)
    return {"conflicts": rows, "retrying": retry_pending([row.id for row in rows]), "total": total}


bp.add_app_template_global(conflicts.when_text, "conflict_when")
bp.add_app_template_global(conflicts.organiser_label, "organiser_label")


@bp.app_template_global()
def open_conflict_counts(integration_ids=None):
    """Open conflicts per integration id, for support pages; empty for anyone else."""
    if not current_user.is_authenticated or not current_user.is_support:
        return {}
    return conflicts.open_conflict_counts(integration_ids)


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/conflicts/<int:conflict_id>/retry", methods=["POST"])
@login_required
def conflict_retry(org_id, integration_id, conflict_id):
    """Queue *Try again*: the appointment is read from Outlook and decided as the sync would."""
    organisation = organisation_or_404(org_id)
    integration = in_organisation_or_404(Integration, organisation, integration_id)
    conflict = db.session.get(SyncConflict, conflict_id)
    if conflict is None or conflict.integration_id != integration.id:
        abort(404)
    enqueue_conflict_retry(conflict)
    audit_log.record(integration, audit_log.CONFLICT_RETRIED, f"“{conflict.subject}” on {conflict.link.label}.")
    db.session.commit()
    flash(
        f"Trying again: “{conflict.subject}” is read from Outlook in the background and booked if the room is free. "
        "Reload this page in a moment: a booked appointment leaves the list, one that still clashes stays with a note.",
        "success",
    )
    status_url = url_for("admin.integration_detail", org_id=organisation.id, integration_id=integration.id)
    return redirect(f"{status_url}#conflicts-heading")
