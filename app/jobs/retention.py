"""Bounded history: sync-log and audit-log rows older than their retention are deleted once a day.

The sync log keeps `SYNC_LOG_RETENTION_DAYS` (90) days, the audit log
`AUDIT_LOG_RETENTION_DAYS` (730), the hourly sync-health rollups `hourly.RETENTION_DAYS`
(35; the charts show the last 7). The jobs table needs no pruning: a job is deleted the
moment it succeeds (`queue.complete`), and a parked failure, kept for support, is one row
per key (`queue._forget_older_failures`).

The prune is a job of its own, run by the job pool: periodic jobs only queue work (see
app/scheduler/runner.py), and deleting a large backlog can take minutes. A periodic job
every 15 minutes makes sure one prune is queued for the next PRUNE_AT (UTC). The queued
job lives in the database, so the nightly rhythm survives restarts and a change of lease
holder, which a daily `schedule` slot, counted from each process's start, would not. Rows
go BATCH_SIZE at a time, each batch in its own short transaction, so neither SQLite nor
PostgreSQL keeps the table locked for long; a prune cut off half-way keeps what it deleted
and leaves the rest to its next run.
"""

import logging
from datetime import time, timedelta

from flask import current_app
from sqlalchemy import delete, select

from app import clock
from app.extensions import db
from app.jobs import queue
from app.jobs.handlers import handler
from app.metrics import hourly
from app.models import AuditEntry, SyncHourly, SyncLogEntry
from app.scheduler.periodic import next_time_of_day, periodic
from config import positive_days

log = logging.getLogger(__name__)

PRUNE_HISTORY = "prune_history"
PRUNE_KEY = "history"
#: When the daily prune is due, in UTC: night for the European customers, away from office hours.
PRUNE_AT = time(3, 0)
#: Rows deleted per statement and transaction.
BATCH_SIZE = 1000

#: Each pruned table, with the setting that says how many days of it are kept.
RETENTIONS = ((SyncLogEntry, "SYNC_LOG_RETENTION_DAYS"), (AuditEntry, "AUDIT_LOG_RETENTION_DAYS"))


class RetentionSettingInvalid(ValueError):
    """A retention setting that is not a whole number of days above 0; retrying cannot help."""

    is_transient = False


@periodic("prune_history")
def queue_history_pruning(now):
    """Make sure a prune is queued for the next PRUNE_AT; one already pending keeps its time. Commits."""
    queue.enqueue(PRUNE_HISTORY, PRUNE_KEY, run_at=next_time_of_day(now, PRUNE_AT))
    db.session.commit()


@handler(PRUNE_HISTORY)
def run_history_pruning(key, payload):
    """The daily prune job: history past its retention, measured from now."""
    prune_history(clock.utcnow())


def prune_history(now):
    """Delete the rows of each table in RETENTIONS older than its retention; return {table name: rows deleted}.

    Every setting is checked before anything is deleted. One rule for the whole
    installation, so the deletes span all organisations. Commits after each batch.
    """
    cutoffs = [(model, now - timedelta(days=retention_days(setting))) for model, setting in RETENTIONS]
    deleted = {model.__tablename__: delete_older_than(model, cutoff) for model, cutoff in cutoffs}
    # A day of rollups is 24 rows per integration: one statement deletes a day's worth quickly.
    deleted[SyncHourly.__tablename__] = hourly.prune(now)
    db.session.commit()
    if any(deleted.values()):
        log.info("Pruned history: %s", ", ".join(f"{count} {table} row(s)" for table, count in deleted.items()))
    return deleted


def retention_days(setting):
    """The configured number of days for `setting`, or RetentionSettingInvalid saying what is wrong."""
    try:
        return positive_days(setting, current_app.config.get(setting))
    except ValueError as error:
        raise RetentionSettingInvalid(str(error)) from None


def delete_older_than(model, cutoff):
    """Delete the rows of `model` created before `cutoff`, BATCH_SIZE per transaction; return how many went.

    Each batch is picked in id order from where the previous one ended, so no batch reads
    again past the rows already deleted.
    """
    deleted, after_id = 0, 0
    while True:
        batch = db.session.scalars(
            select(model.id).where(model.created_at < cutoff, model.id > after_id).order_by(model.id).limit(BATCH_SIZE)
        ).all()
        if batch:
            db.session.execute(delete(model).where(model.id.in_(batch)).execution_options(synchronize_session=False))
        db.session.commit()
        deleted += len(batch)
        if len(batch) < BATCH_SIZE:
            return deleted
        after_id = batch[-1]
