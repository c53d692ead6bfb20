"""People in the portal: the account lists, creating and disabling accounts, set-password
links, changing one's own password and the forgotten-password form.

Views stay thin: the rules live in app/auth/accounts.py, the links in app/auth/passwords.py.
"""

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user
from sqlalchemy.exc import IntegrityError

from app.alerts.delivery import email_enabled
from app.auth import accounts, audit_log, bp, passwords
from app.auth.access import organisation_or_404, support_required
from app.auth.forms import AccountForm, ChangePasswordForm, ForgotPasswordForm, SetPasswordForm
from app.auth.throttle import limit_attempts
from app.extensions import db
from app.models import Organisation, User
from app.models.organisation import ROLE_ADMIN

FORGOT_ANSWER = "If an account exists for this address, a link to set a new password was sent to it."


@bp.route("/people")
@login_required
def people():
    """Support: every account. An admin: their own organisation's."""
    if not current_user.is_support:
        return redirect(url_for("auth.organisation_people", org_id=current_user.organisation_id))
    users = db.session.scalars(accounts.accounts_query()).all()
    return _people_page(users, organisation=None)


@bp.route("/orgs/<int:org_id>/people")
@login_required
def organisation_people(org_id):
    organisation = organisation_or_404(org_id)
    users = db.session.scalars(accounts.accounts_query(organisation)).all()
    return _people_page(users, organisation=organisation)


def _people_page(users, organisation):
    return render_template(
        "auth/people.html",
        users=users,
        organisation=organisation,
        can_email=email_enabled(),
        changes=accounts.recent_account_changes(organisation),
        labels=audit_log.ACTION_LABELS,
    )


@bp.route("/people/new", methods=["GET", "POST"])
@support_required
def account_new():
    organisations = db.session.scalars(db.select(Organisation).order_by(Organisation.name)).all()
    form = AccountForm(organisations)
    if request.method == "GET" and request.args.get("org_id", "").isdigit():
        form.organisation.data = int(request.args["org_id"])
    if form.validate_on_submit():
        # The form checked that an admin's organisation is one of those listed.
        organisation = db.session.get(Organisation, form.organisation.data) if form.role.data == ROLE_ADMIN else None
        try:
            user = accounts.create_account(form.email.data, form.role.data, organisation)
        except IntegrityError:
            # Someone created the same address a moment ago.
            db.session.rollback()
            form.email.errors.append("An account with this e-mail address exists already.")
        else:
            return _hand_out_link(user, passwords.INVITE, by_email=email_enabled(), created=True)
    return render_template("auth/account_form.html", form=form)


@bp.route("/people/<int:user_id>/link", methods=["POST"])
@support_required
def account_link(user_id):
    """A new set-password link for an invited or locked-out account; earlier links stop working."""
    user = db.get_or_404(User, user_id)
    if user.is_disabled:
        flash(f"{user.email} is disabled; enable it before issuing a link.", "error")
        return redirect(_back_to_list(user))
    by_email = request.form.get("delivery") == "email" and email_enabled()
    purpose = passwords.INVITE if not user.has_password else passwords.RESET
    return _hand_out_link(user, purpose, by_email=by_email, created=False)


def _hand_out_link(user, purpose, *, by_email, created):
    if by_email:
        passwords.queue_link_email(user, purpose)
        link = expires = None
    else:
        link, expires = passwords.issue_link(user, purpose)
    how = "e-mailed" if by_email else "shown to the creator" if created else "shown"
    audit_log.record_account(user, audit_log.LINK_ISSUED, f"{user.email} ({purpose}, {how})")
    db.session.commit()
    return _not_stored(
        render_template(
            "auth/account_link.html", user=user, link=link, expires=expires, created=created, by_email=by_email
        )
    )


def _not_stored(page, status=200):
    # A page with a working link must not stay behind in a browser's or proxy's cache.
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/people/<int:user_id>/disable", methods=["POST"])
@support_required
def account_disable(user_id):
    user = db.get_or_404(User, user_id)
    try:
        accounts.disable_account(current_user, user)
    except accounts.AccountRefused as refused:
        db.session.rollback()
        flash(str(refused), "error")
    else:
        db.session.commit()
        flash(f"{user.email} is disabled and signed out everywhere.", "success")
    return redirect(_back_to_list(user))


@bp.route("/people/<int:user_id>/enable", methods=["POST"])
@support_required
def account_enable(user_id):
    user = db.get_or_404(User, user_id)
    accounts.enable_account(user)
    db.session.commit()
    flash(f"{user.email} can sign in again.", "success")
    return redirect(_back_to_list(user))


def _back_to_list(user):
    if request.form.get("from") == "organisation" and user.organisation_id:
        return url_for("auth.organisation_people", org_id=user.organisation_id)
    return url_for("auth.people")


@bp.route("/set-password/<token>", methods=["GET", "POST"])
@limit_attempts("auth/set_password.html", SetPasswordForm, per_account=False)
def set_password(token):
    try:
        user, _purpose = passwords.account_for(token)
    except passwords.InvalidLink as invalid:
        return _not_stored(render_template("auth/set_password.html", form=None, invalid=str(invalid)), 410)
    form = SetPasswordForm()
    if form.validate_on_submit():
        passwords.set_password_from_link(user, form.password.data)
        if current_user.is_authenticated and current_user.id != user.id:
            flash("Your password is set. Sign out and sign in with your own account to use it.", "success")
            return redirect(url_for("orgs.home"))
        login_user(user)
        accounts.note_sign_in(user)
        db.session.commit()
        flash("Your password is set and you are signed in.", "success")
        return redirect(url_for("orgs.home"))
    return _not_stored(render_template("auth/set_password.html", form=form, user=user, invalid=None))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm(current_user)
    if form.validate_on_submit():
        user = current_user._get_current_object()
        accounts.change_password(user, form.password.data)
        db.session.commit()
        # Signed in again under the new password: every other session of the account ends.
        login_user(user)
        flash("Your password is changed.", "success")
        return redirect(url_for("orgs.home"))
    return render_template("auth/change_password.html", form=form)


@bp.route("/forgot-password", methods=["GET", "POST"])
@limit_attempts("auth/forgot_password.html", ForgotPasswordForm, per_account=True)
def forgot_password():
    if not email_enabled():
        abort(404)
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        email = accounts.normalised_email(form.email.data)
        user = db.session.scalar(db.select(User).where(User.email == email))
        if user is not None and not user.is_disabled:
            passwords.queue_link_email(user, passwords.RESET)
            audit_log.record_account(user, audit_log.RESET_REQUESTED, actor=user)
            db.session.commit()
        return render_template("auth/forgot_password.html", form=None, sent=FORGOT_ANSWER)
    return render_template("auth/forgot_password.html", form=form, sent=None)
