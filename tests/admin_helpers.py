"""Rows the admin portal tests build on: an application-mode integration with rooms, and counting."""

from types import SimpleNamespace

from app.extensions import db
from app.jobs import handlers, queue
from app.models import AuditEntry, CalendarLink, Integration, Job

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def add_rooms_integration(organisation, rooms=(), **overrides):
    """An application-mode integration of `organisation` (a `world.a`-like namespace) with room links.

    `rooms` holds mailboxes, or dicts of CalendarLink columns with at least `mailbox`.
    Returns a namespace with the integration id, {mailbox: link id} and the page base path.
    """
    values = dict(
        organisation_id=organisation.org,
        name="Meeting rooms",
        auth_mode="application",
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret="app-client-secret-K9x%",
        connection_state="connected",
    )
    values.update(overrides)
    integration = Integration(**values)
    db.session.add(integration)
    db.session.flush()
    for room in rooms:
        columns = {"mailbox": room} if isinstance(room, str) else dict(room)
        columns.setdefault("object_id", organisation.object)
        db.session.add(CalendarLink(integration_id=integration.id, **columns))
    db.session.commit()
    links = dict(
        db.session.execute(
            db.select(CalendarLink.mailbox, CalendarLink.id).where(CalendarLink.integration_id == integration.id)
        ).all()
    )
    return SimpleNamespace(
        id=integration.id, links=links, base=f"/orgs/{organisation.org}/integrations/{integration.id}"
    )


def count(model, *conditions):
    return db.session.scalar(db.select(db.func.count()).select_from(model).where(*conditions))


def queued_jobs():
    """(kind, key) of every job, sorted."""
    return sorted(db.session.execute(db.select(Job.kind, Job.key)).all())


def audit_entries(integration_id=None):
    """(action, detail, user_email) of the audit log, oldest first."""
    query = db.select(AuditEntry.action, AuditEntry.detail, AuditEntry.user_email).order_by(AuditEntry.id)
    if integration_id is not None:
        query = query.where(AuditEntry.integration_id == integration_id)
    return [tuple(row) for row in db.session.execute(query)]


def run_queued_jobs(*kinds):
    """Run every due job of `kinds` as the job pool would (handler, then complete or fail); return their outcomes.

    The outcome of a job, by (kind, key), is "done" or the state `queue.fail` left it in.
    """
    handlers.load_handlers()
    outcomes = {}
    while (job := queue.claim("test-worker", list(kinds))) is not None:
        try:
            handlers.handler_for(job.kind)(job.key, job.payload)
        except Exception as error:  # noqa: BLE001 - the queue decides, as in the runner
            db.session.rollback()
            outcomes[(job.kind, job.key)] = queue.fail(job, error)
        else:
            queue.complete(job)
            outcomes[(job.kind, job.key)] = "done"
    return outcomes
