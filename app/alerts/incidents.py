"""The life of an incident: opened once, reminded at most daily, resolved by itself.

`evaluate` runs every minute in the scheduler (slot "evaluate_alerts") and can be run by
hand (`flask alerts evaluate`). It compares what the rules find with the open incidents:

- a finding without an open incident opens one and sends one notification per channel;
  a finding that must hold for a while (`hold_for`) waits in `alert_conditions` first;
- an open incident whose finding is still there gets its message brought up to date, and
  a reminder once `ALERT_REMIND_HOURS` have passed since the last notification, unless
  someone acknowledged it;
- an open incident whose finding is gone is resolved, with a "resolved" notification
  (acknowledged or not). Subjects a rule cannot judge this time stay as they are.

Notifications are jobs (see `delivery`), queued in the same transaction, so nothing is
sent unless the incident change is committed. Opening, reminding and resolving are
conditional writes: two evaluators running at once neither open an incident twice nor
notify twice.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import selectinload

from app import clock
from app.alerts import delivery, rules
from app.extensions import db
from app.models import AlertCondition, Incident
from app.models.incident import SEVERITY_CRITICAL
from app.scheduler.periodic import periodic

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    opened: list = field(default_factory=list)
    reminded: list = field(default_factory=list)
    resolved: list = field(default_factory=list)


@periodic("evaluate_alerts")
def evaluate_alerts(now):
    return evaluate(now)


def evaluate(now=None):
    """Run the rules once and bring the incidents in line with them. Commits."""
    now = now or clock.utcnow()
    verdict = rules.evaluate_rules(now)
    open_incidents = {
        (incident.kind, incident.subject): incident
        for incident in db.session.scalars(select(Incident).where(Incident.resolved_at.is_(None)))
    }
    first_seen = _remember_conditions(verdict.findings, now)
    remind_every = timedelta(hours=float(current_app.config.get("ALERT_REMIND_HOURS", 24)))
    outcome = Evaluation()
    for finding in verdict.findings:
        incident = open_incidents.get(finding.key)
        if incident is None:
            if finding.hold_for and now - first_seen[finding.key] < finding.hold_for:
                continue
            incident = _open(finding, now)
            if incident is not None:
                outcome.opened.append(incident)
            continue
        _bring_up_to_date(incident, finding)
        if incident.acknowledged_at is None and incident.last_notified_at <= now - remind_every:
            if _claim_notification(incident, now):
                delivery.notify(incident, delivery.REMINDER)
                outcome.reminded.append(incident)
    seen = {finding.key for finding in verdict.findings}
    for key, incident in open_incidents.items():
        if key in seen or key in verdict.unknown:
            continue
        if _resolve(incident, now):
            delivery.notify(incident, delivery.RESOLVED)
            outcome.resolved.append(incident)
    db.session.commit()
    for incident in outcome.opened:
        log.warning("Incident %s opened: %s %s", incident.id, incident.kind, incident.subject)
    for incident in outcome.resolved:
        log.info("Incident %s resolved: %s %s", incident.id, incident.kind, incident.subject)
    return outcome


def _remember_conditions(findings, now):
    """When each finding that must hold was first seen without interruption; forget the rest."""
    held = {finding.key for finding in findings if finding.hold_for}
    known = {
        (kind, subject): seen_at
        for kind, subject, seen_at in db.session.execute(
            select(AlertCondition.kind, AlertCondition.subject, AlertCondition.first_seen_at)
        )
    }
    for kind, subject in set(known) - held:
        db.session.execute(
            delete(AlertCondition)
            .where(AlertCondition.kind == kind, AlertCondition.subject == subject)
            .execution_options(synchronize_session=False)
        )
    new = sorted(held - set(known))
    if new:
        insert = postgresql_insert if _dialect() == "postgresql" else sqlite_insert
        # Another evaluator may insert the same row meanwhile: its time is as good as ours.
        db.session.execute(
            insert(AlertCondition).on_conflict_do_nothing(index_elements=["kind", "subject"]),
            [{"kind": kind, "subject": subject, "first_seen_at": now} for kind, subject in new],
        )
    return {key: known.get(key, now) for key in held}


def _open(finding, now):
    """Insert the incident unless one is open for (kind, subject) already; notify. None if it was."""
    insert = postgresql_insert if _dialect() == "postgresql" else sqlite_insert
    values = {
        "organisation_id": finding.organisation_id,
        "integration_id": finding.integration_id,
        "link_id": finding.link_id,
        "kind": finding.kind,
        "subject": finding.subject,
        "severity": finding.severity,
        "message": finding.message,
        "integration_name": finding.integration_name,
        "mailbox": finding.mailbox,
        "opened_at": now,
        "last_notified_at": now,
    }
    incident_id = db.session.execute(
        insert(Incident)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["kind", "subject"], index_where=text("resolved_at IS NULL"))
        .returning(Incident.id)
    ).scalar_one_or_none()
    if incident_id is None:
        return None
    incident = db.session.get(Incident, incident_id)
    delivery.notify(incident, delivery.OPENED)
    return incident


def _bring_up_to_date(incident, finding):
    # Counts and error texts change while an incident lasts; that is no reason to notify again.
    for name in ("severity", "message", "integration_name", "mailbox"):
        value = getattr(finding, name)
        if value is not None and getattr(incident, name) != value:
            setattr(incident, name, value)


def _claim_notification(incident, now):
    claimed = db.session.execute(
        update(Incident)
        .where(
            Incident.id == incident.id,
            Incident.resolved_at.is_(None),
            Incident.acknowledged_at.is_(None),
            Incident.last_notified_at == incident.last_notified_at,
        )
        .values(last_notified_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 1:
        incident.last_notified_at = now
        return True
    return False


def _resolve(incident, now):
    resolved = db.session.execute(
        update(Incident)
        .where(Incident.id == incident.id, Incident.resolved_at.is_(None))
        .values(resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    if resolved.rowcount == 1:
        incident.resolved_at = now
        return True
    return False


def acknowledge(incident, user, now=None):
    """Stop the reminders of an open incident; its "resolved" notification still comes. Commits.

    Returns False when it was resolved or acknowledged already.
    """
    now = now or clock.utcnow()
    done = db.session.execute(
        update(Incident)
        .where(Incident.id == incident.id, Incident.resolved_at.is_(None), Incident.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by=user.email)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(incident)
    return done.rowcount == 1


# -- what the portal shows -----------------------------------------------------------------


def open_incidents_query(*, organisation_id=None, integration_id=None, visible_to=None):
    """Open incidents, critical first, then the newest; narrowed to what `visible_to` (a user) may see."""
    query = select(Incident).where(Incident.resolved_at.is_(None)).options(selectinload(Incident.organisation))
    if organisation_id is not None:
        query = query.where(Incident.organisation_id == organisation_id)
    if integration_id is not None:
        query = query.where(Incident.integration_id == integration_id)
    query = _visible(query, visible_to)
    critical_first = (Incident.severity != SEVERITY_CRITICAL).asc()
    return query.order_by(critical_first, Incident.opened_at.desc(), Incident.id.desc())


def history_query(*, organisation_id=None, visible_to=None):
    """Every incident, open ones first, then by opening time, newest first."""
    query = select(Incident).options(selectinload(Incident.organisation))
    if organisation_id is not None:
        query = query.where(Incident.organisation_id == organisation_id)
    query = _visible(query, visible_to)
    still_open = Incident.resolved_at.is_not(None).asc()
    return query.order_by(still_open, Incident.opened_at.desc(), Incident.id.desc())


def _visible(query, user):
    if user is None or getattr(user, "is_support", False):
        return query
    if not getattr(user, "is_authenticated", False):
        return query.where(db.false())
    # Installation-wide incidents (no organisation) are for support only.
    return query.where(Incident.organisation_id == user.organisation_id)


def open_counts_by_kind():
    """{(kind, severity): number} of open incidents, for /metrics."""
    rows = db.session.execute(
        select(Incident.kind, Incident.severity, db.func.count())
        .where(Incident.resolved_at.is_(None))
        .group_by(Incident.kind, Incident.severity)
    )
    return {(kind, severity): number for kind, severity, number in rows}


def _dialect():
    return db.session.get_bind().dialect.name
