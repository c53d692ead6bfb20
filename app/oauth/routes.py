from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from app.auth import audit_log
from app.auth.access import in_organisation_or_404, organisation_or_404
from app.models import Integration
from app.oauth import bp, flow
from app.public_urls import OAUTH_CALLBACK_PATH


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/connect", methods=["POST"])
@login_required
def connect(org_id, integration_id):
    integration = _integration_or_404(org_id, integration_id)
    if not integration.is_delegated:
        abort(400, "This integration uses application permissions, which need no sign-in: use Test connection.")
    try:
        return redirect(flow.begin_sign_in(integration, current_user))
    except flow.CannotConnect as problem:
        flash(str(problem), "error")
        return redirect(_detail_url(integration))


@bp.route(OAUTH_CALLBACK_PATH)
@login_required
def callback():
    try:
        integration = flow.finish_sign_in(request.args, current_user)
    except flow.SignInFailed as failure:
        flash(failure.message, "error")
        return redirect(_detail_url(failure.integration) if failure.integration else url_for("orgs.home"))
    audit_log.record(integration, audit_log.CONNECTED, f"Connected as {integration.connected_account}.", commit=True)
    flash(f"Connected to Microsoft as {integration.connected_account}.", "success")
    return redirect(_detail_url(integration))


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/disconnect", methods=["POST"])
@login_required
def disconnect(org_id, integration_id):
    integration = _integration_or_404(org_id, integration_id)
    queued = flow.disconnect(integration)
    if queued:
        what = (
            f"Deleting {queued} subscription(s) at Microsoft is queued; "
            "the stored tokens are deleted once that has run."
        )
        audit_log.record(integration, audit_log.DISCONNECTED, what, commit=True)
        flash(f"Disconnected from Microsoft. {what}", "success")
    else:
        audit_log.record(integration, audit_log.DISCONNECTED, "The stored tokens were deleted.", commit=True)
        flash("Disconnected from Microsoft: the stored tokens are deleted.", "success")
    return redirect(_detail_url(integration))


def _integration_or_404(org_id, integration_id):
    return in_organisation_or_404(Integration, organisation_or_404(org_id), integration_id)


def _detail_url(integration):
    return url_for("admin.integration_detail", org_id=integration.organisation_id, integration_id=integration.id)
