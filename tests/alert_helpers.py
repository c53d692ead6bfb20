"""Building blocks for alert tests: running the evaluator and the send_alert jobs."""

from sqlalchemy import select

from app.alerts import delivery
from app.extensions import db
from app.jobs import handlers, queue
from app.models import Incident, Job, Organisation
from app.models.job import JOB_QUEUED

HOOK_A = "https://hooks.alpha.example/alerts?key=secret-a"
HOOK_B = "https://hooks.beta.example/alerts"


def set_webhook(organisation_id, url):
    db.session.get(Organisation, organisation_id).alert_webhook_url = url
    db.session.commit()


def alert_jobs():
    """Keys of the send_alert jobs waiting to run, oldest first."""
    rows = db.session.scalars(
        select(Job).where(Job.kind == delivery.SEND_ALERT, Job.state == JOB_QUEUED).order_by(Job.id)
    ).all()
    return [job.key for job in rows]


def open_incidents():
    return db.session.scalars(select(Incident).where(Incident.resolved_at.is_(None)).order_by(Incident.id)).all()


def all_incidents():
    return db.session.scalars(select(Incident).order_by(Incident.id)).all()


def only_open(kind):
    [incident] = [incident for incident in open_incidents() if incident.kind == kind]
    return incident


def run_alert_jobs(now=None):
    """Run every due send_alert job as the job pool would; return their outcomes by key."""
    handlers.load_handlers()
    outcomes = {}
    while True:
        job = queue.claim("test-worker", [delivery.SEND_ALERT], now=now)
        if job is None:
            return outcomes
        try:
            handlers.handler_for(job.kind)(job.key, job.payload)
        except Exception as error:  # noqa: BLE001 - the queue decides, as in the runner
            outcomes[job.key] = queue.fail(job, error, now=now)
        else:
            queue.complete(job)
            outcomes[job.key] = "sent"
