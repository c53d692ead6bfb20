"""Sign-in throttling: failed attempts counted per submitted account and per client address.

Flask-Limiter keeps the counts in RATELIMIT_STORAGE_URI. Only attempts that sign nobody in
are counted, so people who sign in often are never throttled; once a limit is reached, every
attempt is refused (the right password too) with one answer, whether or not the account exists.
"""

import hashlib
import time

from flask import current_app, make_response, render_template, request
from flask_login import current_user
from limits import parse_many

from app.extensions import limiter

THROTTLED_MESSAGE = "Too many sign-in attempts; try again in a few minutes."
PER_ACCOUNT = "LOGIN_RATE_LIMIT_PER_ACCOUNT"
PER_ADDRESS = "LOGIN_RATE_LIMIT_PER_ADDRESS"


def init_app(app):
    """Start counting; refuse to start with a limit setting that is not a list of limits."""
    for name in (PER_ACCOUNT, PER_ADDRESS):
        try:
            parse_many(app.config[name])
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    limiter.init_app(app)


def limit_attempts(template, form_class, per_account):
    """Throttle the POSTs of a sign-in view; a throttled one gets `template` again with status 429."""
    answer = _throttled_answer(template, form_class)
    limits = [limiter.limit(_setting(PER_ADDRESS), methods=["POST"], deduct_when=_nobody_signed_in, on_breach=answer)]
    if per_account:
        limits.append(
            limiter.limit(
                _setting(PER_ACCOUNT),
                key_func=_submitted_account,
                exempt_when=_no_account_submitted,
                methods=["POST"],
                deduct_when=_nobody_signed_in,
                on_breach=answer,
            )
        )

    def decorate(view):
        for limit in limits:
            view = limit(view)
        return view

    return decorate


def _setting(name):
    return lambda: current_app.config[name]


def _submitted_account():
    # Hashed, because people do type their password into the e-mail field, and the key is
    # kept in the store and logged when a limit is reached. The prefix keeps it apart from
    # the client addresses' keys.
    submitted = request.form.get("email", "").strip().lower()
    return "account:" + hashlib.sha256(submitted.encode()).hexdigest()


def _no_account_submitted():
    return not request.form.get("email", "").strip()


def _nobody_signed_in(_response):
    return not current_user.is_authenticated


def _throttled_answer(template, form_class):
    def answer(request_limit):
        # The form bound to the request keeps the e-mail address typed; never the password.
        page = render_template(template, form=form_class(), throttled=THROTTLED_MESSAGE)
        response = make_response(page, 429)
        response.headers["Retry-After"] = str(max(1, int(request_limit.reset_at - time.time())))
        return response

    return answer
