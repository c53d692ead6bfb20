"""Set-password links: signed, expiring, single use; and their delivery by e-mail.

A link carries the account id, its purpose, an expiry and the account's link nonce,
signed with SECRET_KEY. The nonce changes whenever a link is issued or a password is set,
so a link stops working once it is used, once a newer one is issued, or once the
password changes. Expiry is checked against app.clock, not the signer's own timestamp,
so that tests can move time.

E-mail goes through the job queue like alert e-mail: the request only queues the job,
so answering "if an account exists, a link was sent" takes as long either way, and the
link itself is made when the job runs, so it is never stored.
"""

import logging
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app import clock
from app.alerts.delivery import email_enabled, sender, smtp_send
from app.auth import audit_log
from app.extensions import db
from app.jobs import queue
from app.jobs.handlers import handler
from app.models import User
from app.public_urls import public_url

log = logging.getLogger(__name__)

INVITE = "invite"
RESET = "reset"
LIFETIMES = {INVITE: timedelta(hours=72), RESET: timedelta(hours=1)}
SEND_ACCOUNT_LINK = "send_account_link"
_SALT = "set-password-link"
#: Where a link leads; the route in app/auth/routes.py. Built by hand because jobs have no request.
SET_PASSWORD_PATH = "/set-password/"


class InvalidLink(Exception):
    """The link is not one of ours, was used or replaced, or has expired; the message says which."""


def _serializer():
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def issue_link(user, purpose):
    """A new set-password URL for `user`; every earlier link of the account stops working.

    Changes the account in the caller's transaction: commit before handing the link out.
    """
    user.rotate_link_nonce()
    expires = clock.utcnow() + LIFETIMES[purpose]
    token = _serializer().dumps([user.id, user.link_nonce, purpose, int(expires.timestamp())])
    return public_url(SET_PASSWORD_PATH + token), expires


def account_for(token):
    """The account a link is for, with its purpose; InvalidLink when it no longer works."""
    try:
        user_id, nonce, purpose, expires_at = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError):
        raise InvalidLink("This link is not valid. Check that you copied all of it.") from None
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or user.is_disabled or purpose not in LIFETIMES or nonce != user.link_nonce:
        raise InvalidLink("This link has been used or replaced by a newer one.")
    if clock.utcnow().timestamp() >= expires_at:
        raise InvalidLink("This link has expired.")
    return user, purpose


def set_password_from_link(user, password):
    """Set the password of the link's account; the link is spent. Commits."""
    user.set_password(password)
    audit_log.record_account(user, audit_log.PASSWORD_SET, actor=user)
    db.session.commit()


def queue_link_email(user, purpose):
    """Queue an e-mail with a fresh link to `user`; joins the caller's transaction."""
    queue.enqueue(SEND_ACCOUNT_LINK, f"{user.id}:{purpose}", payload={"user_id": user.id, "purpose": purpose})


@handler(SEND_ACCOUNT_LINK)
def run_send_account_link(key, payload):
    """Make a link and e-mail it; DeliveryFailed from smtp_send lets the queue retry."""
    config = current_app.config
    user = db.session.get(User, int(payload["user_id"]))
    purpose = payload["purpose"]
    if user is None or user.is_disabled or purpose not in LIFETIMES or not email_enabled(config):
        return
    link, expires = issue_link(user, purpose)
    db.session.commit()
    smtp_send(config, link_email(user, purpose, link, expires, sender(config)), [user.email])
    log.info("Set-password link (%s) e-mailed to account %s", purpose, user.id)


def link_email(user, purpose, link, expires, from_address):
    message = EmailMessage()
    if purpose == INVITE:
        message["Subject"] = "[i-Reserve] Your account: set your password"
        opening = f"An account for the i-Reserve Outlook integration was created for {user.email}."
    else:
        message["Subject"] = "[i-Reserve] Reset your password"
        opening = f"Someone asked to reset the password of {user.email}. If it was not you, ignore this e-mail."
    message["From"] = from_address
    message["To"] = user.email
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=(parseaddr(from_address)[1].rpartition("@")[2] or None))
    message["Auto-Submitted"] = "auto-generated"
    hours = int(LIFETIMES[purpose].total_seconds() // 3600)
    message.set_content(
        f"{opening}\n\nSet a password here (the link works once, for {hours} hour{'s' if hours != 1 else ''},"
        f" until {expires:%Y-%m-%d %H:%M} UTC):\n\n{link}\n"
    )
    return message
