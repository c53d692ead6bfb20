"""Portal pages where an admin creates and revokes the organisation's API tokens."""

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.api.bearer_tokens import create_token, revoke_token
from app.api.forms import ApiTokenForm
from app.auth.access import in_organisation_or_404, organisation_or_404
from app.extensions import db
from app.models import ApiToken
from app.public_urls import public_url

bp = Blueprint("api_tokens", __name__)


@bp.route("/orgs/<int:org_id>/api-tokens")
@login_required
def token_list(org_id):
    organisation = organisation_or_404(org_id)
    tokens = db.session.scalars(
        db.select(ApiToken)
        .where(ApiToken.organisation_id == org_id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id.desc())
    ).all()
    return render_template(
        "api/token_list.html", organisation=organisation, tokens=tokens, api_base=public_url("/api/v1")
    )


@bp.route("/orgs/<int:org_id>/api-tokens/new", methods=["GET", "POST"])
@login_required
def token_new(org_id):
    organisation = organisation_or_404(org_id)
    form = ApiTokenForm()
    if form.validate_on_submit():
        token, secret = create_token(org_id, form.name.data.strip(), created_by_id=current_user.id)
        db.session.commit()
        # Shown in the answer to this POST and nowhere else: not in a redirect, the session
        # or a cache, so there is no second page that could show it again.
        response = make_response(
            render_template(
                "api/token_created.html",
                organisation=organisation,
                token=token,
                secret=secret,
                api_base=public_url("/api/v1"),
            )
        )
        response.headers["Cache-Control"] = "no-store"
        return response
    return render_template("api/token_form.html", organisation=organisation, form=form)


@bp.route("/orgs/<int:org_id>/api-tokens/<int:token_id>/revoke", methods=["GET", "POST"])
@login_required
def token_revoke(org_id, token_id):
    organisation = organisation_or_404(org_id)
    token = in_organisation_or_404(ApiToken, organisation, token_id)
    if not token.is_active:
        flash(f"Token {token.name} was revoked already.", "info")
        return redirect(url_for("api_tokens.token_list", org_id=org_id))
    if request.method == "POST":
        revoke_token(token)
        db.session.commit()
        flash(f"Token {token.name} revoked: requests with it are refused from now on.", "success")
        return redirect(url_for("api_tokens.token_list", org_id=org_id))
    return render_template("api/token_revoke.html", organisation=organisation, token=token)
