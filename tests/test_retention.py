"""Bounded history: sync-log and audit-log rows past their retention are pruned daily, in batches."""

import runpy
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sql_event
from sqlalchemy import func, select

import config
from app.extensions import db
from app.jobs import handlers, queue, retention
from app.models import AuditEntry, Job, SyncLogEntry
from app.models.job import JOB_FAILED, JOB_QUEUED, JOB_RUNNING
from app.scheduler import periodic
from app.scheduler.runner import Runner

NOT_DAYS = "must be a whole number of days above 0"


def add_sync_log(organisation_id, age, reason):
    db.session.add(SyncLogEntry(organisation_id=organisation_id, action="skip", reason=reason, created_at=age))


def add_audit(organisation_id, age, detail):
    db.session.add(AuditEntry(organisation_id=organisation_id, action="settings", detail=detail, created_at=age))


def sync_log_reasons():
    return sorted(db.session.scalars(select(SyncLogEntry.reason)))


def audit_details():
    return sorted(db.session.scalars(select(AuditEntry.detail)))


@pytest.fixture
def history(app, world, clock):
    """Log rows of both organisations either side of the default retentions (90 and 730 days)."""
    now = clock.now
    with app.app_context():
        for organisation_id in (world.a.org, world.b.org):
            add_sync_log(organisation_id, now - timedelta(days=90, seconds=1), "sync 90 days and a second")
            add_sync_log(organisation_id, now - timedelta(days=400), "sync 400 days")
            add_sync_log(organisation_id, now - timedelta(days=90), "sync exactly 90 days")
            add_sync_log(organisation_id, now - timedelta(days=3), "sync 3 days")
            add_audit(organisation_id, now - timedelta(days=731), "audit 731 days")
            add_audit(organisation_id, now - timedelta(days=400), "audit 400 days")
            add_audit(organisation_id, now - timedelta(days=3), "audit 3 days")
        db.session.commit()
    return now


def test_rows_past_each_retention_go_and_younger_ones_stay(app, history):
    with app.app_context():
        deleted = retention.prune_history(history)

        assert deleted == {"sync_log": 4, "audit_log": 2, "sync_hourly": 0}
        assert sync_log_reasons() == ["sync 3 days"] * 2 + ["sync exactly 90 days"] * 2
        assert audit_details() == ["audit 3 days"] * 2 + ["audit 400 days"] * 2


def test_the_configured_retentions_are_the_ones_applied(app, history):
    app.config.update(SYNC_LOG_RETENTION_DAYS=2, AUDIT_LOG_RETENTION_DAYS=365)
    with app.app_context():
        retention.prune_history(history)

        assert sync_log_reasons() == []
        assert audit_details() == ["audit 3 days"] * 2


def test_jobs_in_every_state_are_left_alone_whatever_their_age(app, history):
    """Finished jobs are deleted when they finish; queued, running and parked ones are the queue's business."""
    old = history - timedelta(days=400)
    with app.app_context():
        for key, state in (("1", JOB_QUEUED), ("2", JOB_RUNNING), ("3", JOB_FAILED)):
            db.session.add(Job(kind="sync_link", key=key, state=state, run_at=old, created_at=old, failed_at=old))
        db.session.commit()

        retention.prune_history(history)

        assert sorted(db.session.execute(select(Job.key, Job.state))) == [
            ("1", JOB_QUEUED),
            ("2", JOB_RUNNING),
            ("3", JOB_FAILED),
        ]


@pytest.fixture
def sync_log_deletes(app):
    """The DELETE statements sent for the sync log, as [rows deleted]; `fail_at` makes that one fail."""
    watched = type("Watched", (), {"rowcounts": [], "fail_at": None})()
    with app.app_context():
        engine = db.engine

    def before(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE FROM SYNC_LOG"):
            if watched.fail_at == len(watched.rowcounts) + 1:
                raise ConnectionError("the database went away mid-prune")

    def after(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE FROM SYNC_LOG"):
            watched.rowcounts.append(cursor.rowcount)

    sql_event.listen(engine, "before_cursor_execute", before)
    sql_event.listen(engine, "after_cursor_execute", after)
    yield watched
    sql_event.remove(engine, "before_cursor_execute", before)
    sql_event.remove(engine, "after_cursor_execute", after)


def old_sync_rows(app, world, now, count):
    with app.app_context():
        for number in range(count):
            add_sync_log(world.a.org, now - timedelta(days=100, minutes=number), f"old {number}")
        add_sync_log(world.a.org, now - timedelta(days=1), "young")
        db.session.commit()


def count_sync_log():
    return db.session.scalar(select(func.count()).select_from(SyncLogEntry))


def test_a_prune_deletes_batch_by_batch_until_nothing_old_is_left(app, world, clock, monkeypatch, sync_log_deletes):
    monkeypatch.setattr(retention, "BATCH_SIZE", 3)
    old_sync_rows(app, world, clock.now, 7)
    with app.app_context():
        deleted = retention.prune_history(clock.now)

        assert deleted["sync_log"] == 7
        assert sync_log_deletes.rowcounts == [3, 3, 1]
        assert sync_log_reasons() == ["young"]


def test_a_prune_cut_off_half_way_keeps_its_finished_batches_and_the_next_one_does_the_rest(
    app, world, clock, monkeypatch, sync_log_deletes
):
    monkeypatch.setattr(retention, "BATCH_SIZE", 3)
    old_sync_rows(app, world, clock.now, 7)
    sync_log_deletes.fail_at = 2
    with app.app_context():
        with pytest.raises(Exception, match="the database went away"):
            retention.prune_history(clock.now)
        db.session.rollback()
        assert count_sync_log() == 8 - 3, "the first batch was committed on its own"

    sync_log_deletes.fail_at = None
    with app.app_context():
        assert retention.prune_history(clock.now)["sync_log"] == 4
        assert sync_log_reasons() == ["young"]


def pruning_jobs():
    return db.session.execute(select(Job.state, Job.run_at).where(Job.kind == retention.PRUNE_HISTORY)).all()


def test_the_periodic_job_queues_one_prune_a_day_and_the_job_pool_runs_it(app, history, clock):
    scheduled = {job.name: job for job in periodic.load_periodic_jobs()}
    assert scheduled["prune_history"].function is retention.queue_history_pruning
    assert retention.PRUNE_HISTORY in handlers.load_handlers()

    with app.app_context():
        scheduled["prune_history"].function(clock.now)
        clock.advance(timedelta(hours=1))
        scheduled["prune_history"].function(clock.now)
        # The clock fixture stands at 25 November, 12:00 UTC: the prune waits for the night.
        assert pruning_jobs() == [(JOB_QUEUED, datetime(2026, 11, 26, 3, 0, tzinfo=UTC))]
        assert queue.claim("worker", [retention.PRUNE_HISTORY]) is None, "not due yet"

    clock.advance(timedelta(hours=14))
    runner = Runner(app, workers=1, periodic_jobs=[], poll_seconds=0.05, tick_seconds=0.05, lease_seconds=2)
    runner.start()
    try:
        wait_until(lambda: in_context(app, pruning_jobs) == [])
    finally:
        runner.stop()
    with app.app_context():
        # Pruned at 03:00 the next night: what was exactly 90 days old at noon is past its retention by then.
        assert sync_log_reasons() == ["sync 3 days"] * 2
        assert audit_details() == ["audit 3 days"] * 2 + ["audit 400 days"] * 2

        scheduled["prune_history"].function(clock.now)
        assert pruning_jobs() == [(JOB_QUEUED, datetime(2026, 11, 27, 3, 0, tzinfo=UTC))]


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def in_context(app, function):
    with app.app_context():
        try:
            return function()
        finally:
            db.session.remove()


@pytest.mark.parametrize("value", ["0", "-5", "ninety", "1.5"])
def test_a_retention_that_is_not_a_positive_number_of_days_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("SYNC_LOG_RETENTION_DAYS", value)
    with pytest.raises(ValueError, match=f"SYNC_LOG_RETENTION_DAYS {NOT_DAYS}, not '{value}'"):
        runpy.run_path(config.__file__)


def test_the_retentions_default_to_90_and_730_days_and_follow_the_environment(monkeypatch):
    for name in ("SYNC_LOG_RETENTION_DAYS", "AUDIT_LOG_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    defaults = runpy.run_path(config.__file__)["Config"]
    assert (defaults.SYNC_LOG_RETENTION_DAYS, defaults.AUDIT_LOG_RETENTION_DAYS) == (90, 730)

    monkeypatch.setenv("AUDIT_LOG_RETENTION_DAYS", " 365 ")
    monkeypatch.setenv("SYNC_LOG_RETENTION_DAYS", "")
    configured = runpy.run_path(config.__file__)["Config"]
    assert (configured.SYNC_LOG_RETENTION_DAYS, configured.AUDIT_LOG_RETENTION_DAYS) == (90, 365)


def test_a_bad_retention_in_the_instance_config_parks_the_prune_and_deletes_nothing(app, history):
    app.config["AUDIT_LOG_RETENTION_DAYS"] = 0
    with app.app_context():
        with pytest.raises(ValueError, match=f"AUDIT_LOG_RETENTION_DAYS {NOT_DAYS}") as error:
            retention.prune_history(history)
        assert error.value.is_transient is False, "retrying cannot help: the job is parked for support to see"
        assert len(sync_log_reasons()) == 8 and len(audit_details()) == 6
