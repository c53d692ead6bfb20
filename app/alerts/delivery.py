"""Sending incident notifications: e-mail through SMTP and an organisation's alert webhook.

Nothing is sent inside a web request or inside the evaluator: `notify` queues one job per
notification and channel (kind "send_alert"), and the job pool sends it, retried with the
queue's backoff when the mail server or the webhook is unavailable. Recipients are looked
up when the job runs: the organisation's admins and every support user for an
organisation's incident, support alone for an incident of the installation. An
organisation's webhook only ever hears of that organisation's incidents.
"""

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy import and_, or_, select

from app.alerts import webhook_target
from app.alerts.rules import KIND_LABELS
from app.clock import utc_to_local
from app.extensions import db
from app.graph.errors import parse_retry_after
from app.jobs import queue
from app.jobs.handlers import handler
from app.metrics import instruments
from app.models import Incident, Job, Organisation, User
from app.models.organisation import ROLE_ADMIN, ROLE_SUPPORT
from app.public_urls import public_url

log = logging.getLogger(__name__)

SEND_ALERT = "send_alert"
EMAIL = "email"
WEBHOOK = "webhook"

OPENED = "opened"
REMINDER = "reminder"
RESOLVED = "resolved"
NOTICES = (OPENED, REMINDER, RESOLVED)

SMTP_TLS_MODES = {"starttls": 587, "ssl": 465, "none": 25}
SMTP_TIMEOUT = 30
WEBHOOK_TIMEOUT = (5, 10)
USER_AGENT = "i-Reserve-alerts/1"
SUBJECT_PREFIX = {OPENED: "Alert", REMINDER: "Still open", RESOLVED: "Resolved"}


class DeliveryFailed(Exception):
    """A notification could not be delivered; the message is safe to keep on the job."""

    def __init__(self, message, *, transient=True, retry_after=None):
        super().__init__(message)
        self.is_transient = transient
        self.retry_after = retry_after


# -- queueing --------------------------------------------------------------------------


def email_enabled(config=None):
    """E-mail alerts are on when SMTP_HOST is set."""
    return bool((config or current_app.config).get("SMTP_HOST"))


def notify(incident, notice):
    """Queue `notice` of `incident` on every channel that applies. Joins the caller's transaction.

    A key per (incident, notice, channel): a reminder still waiting for its retry absorbs
    the next one instead of piling up.
    """
    channels = []
    if email_enabled():
        channels.append(EMAIL)
    if incident.organisation_id is not None and _webhook_url(incident.organisation_id):
        channels.append(WEBHOOK)
    for channel in channels:
        queue.enqueue(
            SEND_ALERT,
            f"{incident.id}:{notice}:{channel}",
            payload={"incident_id": incident.id, "notice": notice, "channel": channel},
        )
    return channels


def _webhook_url(organisation_id):
    return db.session.scalar(select(Organisation.alert_webhook_url).where(Organisation.id == organisation_id))


@handler(SEND_ALERT)
def run_send_alert(key, payload):
    """Deliver one notification; raising DeliveryFailed lets the queue retry or park it."""
    incident = db.session.get(Incident, int(payload["incident_id"]))
    if incident is None:
        return  # its organisation was deleted meanwhile
    notice, channel = payload["notice"], payload["channel"]
    send = {EMAIL: send_email, WEBHOOK: post_webhook}.get(channel)
    if send is None or notice not in NOTICES:
        raise DeliveryFailed(f"Unknown alert channel or notice in job {key}.", transient=False)
    try:
        send(incident, notice)
    except DeliveryFailed:
        instruments.alert_notifications.labels(channel=channel, result="error").inc()
        raise
    instruments.alert_notifications.labels(channel=channel, result="ok").inc()


# -- e-mail ----------------------------------------------------------------------------


def recipients(incident):
    """Addresses that hear of `incident`: support always, the organisation's admins for its own."""
    audience = User.role == ROLE_SUPPORT
    if incident.organisation_id is not None:
        audience = or_(audience, and_(User.role == ROLE_ADMIN, User.organisation_id == incident.organisation_id))
    # A disabled account no longer hears of anything.
    return sorted(set(db.session.scalars(select(User.email).where(audience, User.disabled_at.is_(None)))))


def send_email(incident, notice):
    config = current_app.config
    if not email_enabled(config):
        return  # switched off since the job was queued
    to = recipients(incident)
    if not to:
        log.info("Incident %s: nobody to e-mail", incident.id)
        return
    message = build_email(incident, notice, sender(config))
    smtp_send(config, message, to)


def sender(config):
    configured = config.get("ALERT_SENDER")
    if configured:
        return configured
    username = config.get("SMTP_USERNAME") or ""
    if "@" in username:
        return f"i-Reserve <{username}>"
    host = urlsplit(config.get("PUBLIC_BASE_URL") or "").hostname or "localhost"
    return f"i-Reserve <alerts@{host}>"


def build_email(incident, notice, from_address):
    """The message for `notice` of `incident`: plain text, addressed to undisclosed recipients.

    Customer admins and support receive one message, so nobody sees who else got it.
    """
    message = EmailMessage()
    where = incident.organisation.name if incident.organisation else "installation"
    message["Subject"] = (
        f"[i-Reserve] {SUBJECT_PREFIX[notice]}: {KIND_LABELS.get(incident.kind, incident.kind)} – {where}"
    )
    message["From"] = from_address
    message["To"] = "undisclosed-recipients:;"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=(parseaddr(from_address)[1].rpartition("@")[2] or None))
    # Asks vacation responders and ticket systems not to answer automatically (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email_text(incident, notice))
    return message


def email_text(incident, notice):
    timezone = incident.organisation.timezone if incident.organisation else "UTC"
    lines = []
    if notice == RESOLVED:
        lines.append("Resolved: the condition below has cleared.\n")
    elif notice == REMINDER:
        lines.append("Reminder: this incident is still open.\n")
    lines.append(incident.message)
    lines.append("")
    facts = [
        ("Organisation", incident.organisation.name if incident.organisation else "— (installation)"),
        ("Integration", incident.integration_name),
        ("Calendar", incident.mailbox),
        ("Severity", incident.severity),
        ("Opened", _local(incident.opened_at, timezone)),
        ("Resolved", _local(incident.resolved_at, timezone) if incident.resolved_at else None),
        ("Acknowledged", f"by {incident.acknowledged_by}" if incident.acknowledged_at else None),
    ]
    lines.extend(f"{name}: {value}" for name, value in facts if value)
    lines.append("")
    lines.append(f"Incidents: {incident_url(incident)}")
    if notice != RESOLVED:
        lines.append("Acknowledge the incident there to stop the daily reminders.")
    return "\n".join(lines) + "\n"


def smtp_send(config, message, to):
    mode = (config.get("SMTP_TLS") or "starttls").lower()
    if mode not in SMTP_TLS_MODES:
        raise DeliveryFailed(f"SMTP_TLS must be one of {', '.join(SMTP_TLS_MODES)}.", transient=False)
    host = config["SMTP_HOST"]
    port = int(config.get("SMTP_PORT") or SMTP_TLS_MODES[mode])
    envelope_from = parseaddr(message["From"])[1]
    try:
        if mode == "ssl":
            connection = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
        else:
            connection = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
        with connection:
            if mode == "starttls":
                connection.starttls(context=ssl.create_default_context())
            if config.get("SMTP_USERNAME"):
                connection.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
            refused = connection.send_message(message, from_addr=envelope_from, to_addrs=to)
    except smtplib.SMTPAuthenticationError:
        raise DeliveryFailed("The mail server refused SMTP_USERNAME and SMTP_PASSWORD.", transient=False) from None
    except smtplib.SMTPNotSupportedError as error:
        raise DeliveryFailed(
            f"The mail server does not support this: {error} (check SMTP_TLS).", transient=False
        ) from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryFailed("The mail server refused every recipient.", transient=False) from None
    except smtplib.SMTPSenderRefused:
        raise DeliveryFailed(
            f"The mail server refused the sender {envelope_from} (check ALERT_SENDER).", transient=False
        ) from None
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryFailed(f"Mail server {host}:{port} unavailable: {type(error).__name__}: {error}") from None
    if refused:
        log.warning("Mail server refused %d of %d alert recipient(s)", len(refused), len(to))


def _local(moment, timezone):
    if timezone == "UTC":
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"{utc_to_local(moment, timezone):%Y-%m-%d %H:%M} ({timezone})"


# -- webhook ---------------------------------------------------------------------------


def post_webhook(incident, notice):
    """POST the incident as JSON to its organisation's alert webhook; 2xx counts as delivered.

    The URL is checked again first (see webhook_target): an address outside the public
    internet is never contacted and the job is parked. Redirects are not followed, the
    answer's body is not read, and neither the URL (it may carry a secret) nor the answer
    is kept in error texts or logs.
    """
    organisation = incident.organisation
    url = organisation.alert_webhook_url if organisation else None
    if not url:
        return  # removed since the job was queued
    allow_private = current_app.config.get(webhook_target.ALLOW_PRIVATE_SETTING, False)
    try:
        target = webhook_target.check(url, allow_private=allow_private)
    except webhook_target.UnresolvableHost:
        raise DeliveryFailed("The alert webhook's host name could not be resolved.") from None
    except webhook_target.RefusedTarget as refused:
        reason = webhook_target.refusal_message(refused.kind, "its address") if refused.kind else str(refused)
        raise DeliveryFailed(f"The alert webhook was not called: {reason}", transient=False) from None
    try:
        response = webhook_target.post(
            target,
            json=webhook_body(incident, notice),
            timeout=WEBHOOK_TIMEOUT,
            headers={"User-Agent": USER_AGENT},
        )
    except requests.RequestException as error:
        raise DeliveryFailed(f"The alert webhook did not answer ({type(error).__name__}).") from None
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise DeliveryFailed(
            f"The alert webhook answered {status}, a redirect; alert webhooks do not follow redirects.",
            transient=False,
        )
    transient = status in (408, 425, 429) or status >= 500
    raise DeliveryFailed(
        f"The alert webhook answered {status}.",
        transient=transient,
        retry_after=parse_retry_after(response.headers.get("Retry-After")) if transient else None,
    )


def webhook_problems(incident_ids):
    """Why the webhook notices of these incidents are not delivered yet, by incident id.

    Read from the send_alert jobs still waiting for a retry or parked; a delivered notice
    leaves no job behind, so an incident without a problem is absent.
    """
    keys = [f"{incident_id}:{notice}:{WEBHOOK}" for incident_id in incident_ids for notice in NOTICES]
    if not keys:
        return {}
    jobs = db.session.execute(
        select(Job.key, Job.last_error)
        .where(Job.kind == SEND_ALERT, Job.key.in_(keys), Job.last_error.is_not(None))
        .order_by(Job.id)
    ).all()
    return {int(key.partition(":")[0]): error.removeprefix(f"{DeliveryFailed.__name__}: ") for key, error in jobs}


def webhook_body(incident, notice):
    organisation = incident.organisation
    return {
        "id": incident.id,
        "type": incident.kind,
        "title": KIND_LABELS.get(incident.kind, incident.kind),
        "severity": incident.severity,
        "state": notice,
        "organisation": {"id": organisation.id, "name": organisation.name} if organisation else None,
        "integration": (
            {"id": incident.integration_id, "name": incident.integration_name} if incident.integration_name else None
        ),
        "link": {"id": incident.link_id, "mailbox": incident.mailbox} if incident.mailbox else None,
        "message": incident.message,
        "opened_at": _iso(incident.opened_at),
        "resolved_at": _iso(incident.resolved_at),
        "acknowledged_at": _iso(incident.acknowledged_at),
        "url": incident_url(incident),
    }


def incident_url(incident):
    if incident.organisation_id is None:
        return public_url("/incidents")
    return public_url(f"/orgs/{incident.organisation_id}/incidents")


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
