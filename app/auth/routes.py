import hmac
from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.alerts.delivery import email_enabled
from app.auth import accounts, bp
from app.auth.forms import FirstRunForm, LoginForm
from app.auth.throttle import limit_attempts
from app.extensions import db, login_manager
from app.models import User
from app.models.organisation import ROLE_SUPPORT


@login_manager.user_loader
def load_user(session_id):
    user_id, _, fingerprint = session_id.partition(".")
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    # A disabled account's open sessions end on their next request, and so do those opened
    # before its password changed. An id alone is a session from before fingerprints.
    if user is None or user.is_disabled:
        return None
    if fingerprint and not hmac.compare_digest(fingerprint, user.password_fingerprint()):
        return None
    return user


def no_users_yet():
    return db.session.scalar(db.select(User.id).limit(1)) is None


@bp.route("/login", methods=["GET", "POST"])
@limit_attempts("auth/login.html", LoginForm, per_account=True)
def login():
    if no_users_yet():
        return redirect(url_for("auth.first_run"))
    if current_user.is_authenticated:
        return redirect(url_for("orgs.home"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(db.select(User).where(User.email == form.email.data.strip().lower()))
        if user is None or not user.check_password(form.password.data):
            form.password.errors.append("Unknown e-mail address or wrong password.")
        elif user.is_disabled:
            # Said only to whoever knows the password, so it reveals nothing to anyone else.
            form.password.errors.append("This account is disabled. Ask your support contact to enable it.")
        else:
            login_user(user, remember=form.remember.data)
            accounts.note_sign_in(user)
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")) or url_for("orgs.home"))
    return render_template("auth/login.html", form=form, can_reset=email_enabled())


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
@limit_attempts("auth/setup.html", FirstRunForm, per_account=False)
def first_run():
    """Creates the first support account; gone as soon as any user exists."""
    if not no_users_yet():
        abort(404)
    form = FirstRunForm()
    if form.validate_on_submit():
        user = User(email=form.email.data.strip().lower(), role=ROLE_SUPPORT)
        user.set_password(form.password.data)
        db.session.add(user)
        accounts.note_sign_in(user)
        db.session.commit()
        login_user(user)
        flash("Support account created. Create an organisation to begin.", "success")
        return redirect(url_for("orgs.home"))
    return render_template("auth/setup.html", form=form)


def _safe_next(target):
    """Only same-site paths: an absolute URL here would be an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/"):
        return None
    return target
