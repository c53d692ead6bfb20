"""Reads from Microsoft 365 that an admin asks for in the portal, run as jobs: asking, answering, progress.

A click calls :func:`request_report`, which queues the job inside the caller's transaction
and returns at once. The job notes which request it serves (:func:`latest_request`) before
it calls Graph and stores its result with that number (:func:`store_result`). A click made
while a job runs queues the next job, so the page never shows an answer older than its
latest click as final. The page asks :func:`progress_of` and refreshes itself while pending.
Test connection and room discovery both work this way.
"""

import json
from dataclasses import dataclass

from sqlalchemy import bindparam, text

from app import clock
from app.database.column_types import UTCDateTime
from app.extensions import db
from app.jobs import queue
from app.models import IntegrationReport, Job
from app.models.job import JOB_FAILED, JOB_QUEUED, JOB_RUNNING

NEVER = "never"
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"

#: What the page says when the answer is missing and no job is left to give it.
LOST = "it stopped before storing a result"


@dataclass(frozen=True)
class Progress:
    """How far the latest request of one kind got; `error` says why it failed or why it is being retried."""

    state: str
    report: IntegrationReport | None = None
    error: str | None = None

    @property
    def pending(self):
        return self.state in (QUEUED, RUNNING)

    @property
    def result(self):
        """The stored result when the latest request is answered, else None."""
        return self.report.result if self.state == DONE else None


def request_report(integration, kind, job_kind):
    """Ask for a new `kind` report of `integration`: count the request and queue `job_kind` for it.

    Joins the caller's transaction; the job becomes visible when the caller commits.
    """
    report = _report_row(integration.id, kind)
    report.request_number = IntegrationReport.request_number + 1
    report.requested_at = clock.utcnow()
    db.session.flush()
    queue.enqueue(job_kind, str(integration.id))


def latest_request(integration_id, kind):
    """The number of the latest request, which a job that starts now answers (0 when none was made)."""
    number = db.session.scalar(
        db.select(IntegrationReport.request_number).where(
            IntegrationReport.integration_id == integration_id, IntegrationReport.kind == kind
        )
    )
    return number or 0


def store_result(integration_id, kind, answered_number, result):
    """Keep `result` (a JSON-serialisable dict, free of secrets) as the answer to request `answered_number`.

    Joins the caller's transaction.
    """
    report = _report_row(integration_id, kind)
    report.answered_number = answered_number
    report.finished_at = clock.utcnow()
    report.result_json = json.dumps(result, sort_keys=True)


def progress_of(integration_id, kind, job_kind):
    """Where the latest `kind` request of the integration stands, judged by its report and its job."""
    report = db.session.scalar(
        db.select(IntegrationReport).where(
            IntegrationReport.integration_id == integration_id, IntegrationReport.kind == kind
        )
    )
    if report is None or (report.request_number == 0 and report.answered_number is None):
        return Progress(NEVER)
    if report.answered:
        return Progress(DONE, report)
    jobs = db.session.execute(
        db.select(Job.state, Job.last_error).where(Job.kind == job_kind, Job.key == str(integration_id))
    ).all()
    states = {state: error for state, error in jobs}
    if JOB_RUNNING in states:
        return Progress(RUNNING, report)
    if JOB_QUEUED in states:
        # A last error on a queued job means an attempt failed and the queue retries it.
        return Progress(QUEUED, report, states[JOB_QUEUED])
    return Progress(FAILED, report, states.get(JOB_FAILED) or LOST)


def _report_row(integration_id, kind):
    """The report row of (integration, kind), created when missing; two clicks at once share one row."""
    query = db.select(IntegrationReport).where(
        IntegrationReport.integration_id == integration_id, IntegrationReport.kind == kind
    )
    report = db.session.scalar(query)
    if report is None:
        db.session.execute(
            _INSERT_UNLESS_PRESENT,
            {"integration_id": integration_id, "kind": kind, "requested_at": clock.utcnow()},
        )
        report = db.session.scalar(query)
    return report


# PostgreSQL and SQLite spell the conflict on the unique (integration_id, kind) the same way.
_INSERT_UNLESS_PRESENT = text(
    "INSERT INTO integration_reports (integration_id, kind, request_number, requested_at) "
    "VALUES (:integration_id, :kind, 0, :requested_at) ON CONFLICT (integration_id, kind) DO NOTHING"
).bindparams(bindparam("requested_at", type_=UTCDateTime()))
