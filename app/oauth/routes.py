from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.auth import audit_log
from app.auth.access import in_organisation_or_404, organisation_or_404
from app.models import Integration
from app.oauth import account_switch, bp, flow
from app.oauth.forms import SwitchAccountForm
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
        outcome = flow.finish_sign_in(request.args, current_user)
    except flow.SignInFailed as failure:
        flash(failure.message, "error")
        return redirect(_detail_url(failure.integration) if failure.integration else url_for("orgs.home"))
    integration = outcome.integration
    if outcome.switch_offer is not None:
        return redirect(
            url_for(
                "oauth.switch_account",
                org_id=integration.organisation_id,
                integration_id=integration.id,
                offer_id=outcome.switch_offer.id,
            )
        )
    audit_log.record(integration, audit_log.CONNECTED, f"Connected as {integration.connected_account}.", commit=True)
    flash(f"Connected to Microsoft as {integration.connected_account}.", "success")
    return redirect(_detail_url(integration))


@bp.route("/orgs/<int:org_id>/integrations/<int:integration_id>/switch-account/<int:offer_id>", methods=["GET", "POST"])
@login_required
def switch_account(org_id, integration_id, offer_id):
    """Someone signed in as another account than the connected one: switch to it, or keep the old one."""
    integration = _integration_or_404(org_id, integration_id)
    try:
        offer = account_switch.offer_for(integration, offer_id, current_user, flow.PENDING_LIFETIME)
    except account_switch.OfferGone as gone:
        flash(str(gone), "info")
        return redirect(_detail_url(integration))
    plan = account_switch.plan_switch(integration, offer)
    form = SwitchAccountForm()
    decision = request.form.get("decision")
    if form.validate_on_submit() and decision == "keep":
        account_switch.keep_current(integration, offer)
        flash(f"Nothing changed: the integration still syncs {plan.old_account}'s calendar.", "info")
        return redirect(_detail_url(integration))
    if form.validate_on_submit() and decision == "switch":
        asks_for_choice = bool(plan.pushed) and plan.can_write_old_calendar
        if not (asks_for_choice and form.choice_missing()):
            old_events = form.old_events.data if asks_for_choice else account_switch.LEAVE_OLD_EVENTS
            unlinked = account_switch.switch_account(integration, offer, old_events)
            flash(
                f"Switched to {plan.new_account}: its calendar is synced from scratch. "
                f"{unlinked} booking(s) of {plan.old_account}'s calendar were unlinked and keep their status.",
                "success",
            )
            return redirect(_detail_url(integration))
    return render_template(
        "oauth/switch_account.html",
        organisation=integration.organisation,
        integration=integration,
        offer=offer,
        plan=plan,
        form=form,
    )


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
