"""Template helpers behind the incident partials, so any page can include them.

    {% with incidents = open_incidents(integration_id=integration.id) %}{% include "alerts/_banner.html" %}{% endwith %}

Every helper narrows what it returns to what the signed-in user may see.
"""

import logging
from datetime import timedelta

from flask import current_app
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from app.alerts import delivery, rules
from app.alerts.incidents import open_incidents_query
from app.extensions import db

log = logging.getLogger(__name__)

BANNER_LIMIT = 50


def open_incidents(integration_id=None, organisation_id=None, limit=BANNER_LIMIT):
    """Open incidents the signed-in user may see, critical first; all of them for support."""
    if not current_user.is_authenticated:
        return []
    query = open_incidents_query(
        organisation_id=organisation_id, integration_id=integration_id, visible_to=current_user
    ).limit(limit)
    return db.session.scalars(query).all()


def scheduler_heartbeat():
    """The scheduler's heartbeat computed now, for pages that must show a stopped scheduler
    even though the scheduler itself is what evaluates the alert rules."""
    limit = timedelta(minutes=float(current_app.config.get("ALERT_SCHEDULER_MINUTES", 5)))
    try:
        age = rules.heartbeat_age()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("Could not read the scheduler lease")
        return {"never": False, "stale": False, "age": None, "age_text": ""}
    return {
        "never": age is None,
        "stale": age is not None and age > limit,
        "age": age,
        "age_text": rules.describe_age(age) if age is not None else "",
    }


def incident_kind_label(kind):
    return rules.KIND_LABELS.get(kind, kind.replace("_", " "))


def alert_email_enabled():
    return delivery.email_enabled()


def register(app):
    for helper in (open_incidents, scheduler_heartbeat, incident_kind_label, alert_email_enabled):
        app.add_template_global(helper)
