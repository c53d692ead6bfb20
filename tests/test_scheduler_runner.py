import importlib.util
import logging
import os
import signal
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import has_app_context
from sqlalchemy import select

from app.extensions import db
from app.jobs import handlers, queue
from app.models import Job
from app.models.job import JOB_QUEUED, JOB_RUNNING
from app.scheduler import lease
from app.scheduler.periodic import PeriodicJob
from app.scheduler.runner import Runner
from app.subscriptions import routing

ECHO = "test_echo"
FAST = {"poll_seconds": 0.05, "tick_seconds": 0.05, "lease_seconds": 2, "grace_seconds": 2}


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def make_runner(app, **settings):
    return Runner(app, **{"workers": 2, "periodic_jobs": [], **FAST, **settings})


@pytest.fixture
def echo():
    """A job kind whose runs are recorded; `block` holds the next run until `release` is set."""
    record = SimpleNamespace(calls=[], started=threading.Event(), block=False, release=threading.Event())

    @handlers.handler(ECHO)
    def run(key, payload):
        record.calls.append((key, payload, threading.current_thread().name, has_app_context()))
        record.started.set()
        if record.block:
            record.block = False
            record.release.wait(10)

    yield record
    record.release.set()
    handlers.unregister(ECHO)


def enqueue(app, key, **kwargs):
    with app.app_context():
        queue.enqueue(ECHO, key, **kwargs)
        db.session.commit()


def jobs(app):
    with app.app_context():
        rows = db.session.scalars(select(Job).order_by(Job.id)).all()
        result = [(job.key, job.state, job.attempts) for job in rows]
        db.session.remove()
        return result


def lease_holder(app):
    with app.app_context():
        row = lease.current()
        holder = row.holder if row else None
        db.session.remove()
        return holder


def test_a_queued_job_runs_in_the_pool_and_the_runner_stops_cleanly(app, echo):
    enqueue(app, "room-1", payload={"full": True})
    runner = make_runner(app)

    runner.start()
    wait_until(lambda: jobs(app) == [])
    wait_until(lambda: runner.is_leader)
    assert lease_holder(app) == runner.holder_id
    finished = runner.stop()

    assert finished
    assert echo.calls == [("room-1", {"full": True}, echo.calls[0][2], True)]
    assert echo.calls[0][2].startswith("job-worker-")
    assert not any(thread.is_alive() for thread in threading.enumerate() if thread.name.startswith("job-worker-"))
    assert lease_holder(app) is None, "the lease is released on stop"


def test_a_failing_job_goes_back_to_the_queue_with_its_error(app):
    class Busy(Exception):
        is_transient = True
        retry_after = 120

    @handlers.handler("test_busy")
    def busy(key, payload):
        raise Busy("try later")

    try:
        with app.app_context():
            queue.enqueue("test_busy", "room-1")
            db.session.commit()
        runner = make_runner(app)
        runner.start()
        wait_until(lambda: jobs(app) == [("room-1", JOB_QUEUED, 1)])
        runner.stop()
    finally:
        handlers.unregister("test_busy")
    with app.app_context():
        job = db.session.scalar(select(Job))
        assert job.last_error == "Busy: try later"
        assert job.run_at - job.created_at >= timedelta(seconds=120)


def test_only_the_lease_holder_runs_periodic_jobs_and_a_failing_one_does_not_stop_it(app, caplog):
    runs = {"a": [], "b": []}

    def periodic_for(name):
        def count(now):
            runs[name].append(now)
            if len(runs[name]) == 1:
                raise RuntimeError("first run fails")

        return [PeriodicJob("count", timedelta(seconds=0.05), count)]

    first = make_runner(app, holder_id="host:1:a", periodic_jobs=periodic_for("a"))
    first.start()
    wait_until(lambda: first.is_leader)
    second = make_runner(app, holder_id="host:2:b", periodic_jobs=periodic_for("b"))
    second.start()
    try:
        wait_until(lambda: len(runs["a"]) >= 3)
        assert runs["b"] == []
        assert not second.is_leader
        assert all(isinstance(now, datetime) and now.tzinfo is not None for now in runs["a"])
        assert "Periodic job count failed" in caplog.text
    finally:
        first.stop()
        second.stop()


def test_the_lease_passes_to_the_other_runner_when_its_holder_stops(app):
    first = make_runner(app, holder_id="host:1:a")
    second = make_runner(app, holder_id="host:2:b")
    first.start()
    wait_until(lambda: first.is_leader)
    second.start()
    try:
        time.sleep(0.2)
        assert not second.is_leader
        first.stop()
        wait_until(lambda: second.is_leader, timeout=2)
        assert lease_holder(app) == "host:2:b"
    finally:
        first.stop()
        second.stop()


def test_a_job_whose_worker_died_is_run_again(app, clock, database_clock, echo):
    app.config["JOB_LEASE_SECONDS"] = 60
    enqueue(app, "room-1")
    with app.app_context():
        assert queue.claim("dead-host:9:x/0") is not None
    clock.advance(timedelta(seconds=61))

    runner = make_runner(app)
    runner.start()
    try:
        wait_until(lambda: jobs(app) == [])
    finally:
        runner.stop()
    assert [call[0] for call in echo.calls] == ["room-1"]


def test_a_job_cut_off_at_shutdown_stays_claimed_and_runs_again_after_its_lease(
    app, clock, database_clock, echo, caplog
):
    app.config["JOB_LEASE_SECONDS"] = 60
    echo.block = True
    enqueue(app, "room-1")
    first = make_runner(app, workers=1)
    first.start()
    assert echo.started.wait(5)

    assert first.stop(grace_seconds=0.1) is False
    assert "cut off at shutdown" in caplog.text
    assert jobs(app) == [("room-1", JOB_RUNNING, 1)]

    clock.advance(timedelta(seconds=61))
    second = make_runner(app, workers=1)
    second.start()
    try:
        wait_until(lambda: jobs(app) == [])
    finally:
        second.stop()
    # The cut-off run ends late: it no longer owns the job and changes nothing.
    echo.release.set()
    wait_until(lambda: not any(t.is_alive() for t in first._job_threads))
    assert len(echo.calls) == 2
    assert jobs(app) == []


def test_runner_settings_come_from_the_config(app):
    app.config.update(JOB_WORKERS=3, SCHEDULER_LEASE_SECONDS=30, SCHEDULER_TICK_SECONDS=10)
    runner = Runner(app)
    assert (runner.workers, runner.lease_seconds, runner.tick_seconds) == (3, 30, 10)
    with pytest.raises(ValueError):
        Runner(app, lease_seconds=5, tick_seconds=10)


def test_flask_scheduler_run_stops_on_sigterm(app, echo):
    app.config.update(JOB_POLL_SECONDS=0.05, SCHEDULER_TICK_SECONDS=0.05, SCHEDULER_LEASE_SECONDS=2)
    enqueue(app, "room-1")
    previous = signal.getsignal(signal.SIGTERM)

    def terminate_once_the_job_ran():
        if echo.started.wait(10):
            wait_until(lambda: jobs(app) == [])
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_the_job_ran)
    killer.start()
    result = app.test_cli_runner().invoke(args=["scheduler", "run", "--workers", "1"])
    killer.join(10)

    assert result.exit_code == 0, result.output
    assert "running" in result.output
    assert signal.getsignal(signal.SIGTERM) is previous
    assert lease_holder(app) is None


def test_jobs_commands_list_and_retry_parked_jobs(app):
    with app.app_context():
        queue.enqueue(ECHO, "room-1")
        db.session.commit()
        queue.fail(queue.claim("w"), PermissionError("access denied"), transient=False)
        job_id = db.session.scalar(select(Job.id))
    cli = app.test_cli_runner()

    listed = cli.invoke(args=["jobs", "list", "--failed"])
    assert f"{job_id}" in listed.output and "PermissionError: access denied" in listed.output
    assert cli.invoke(args=["jobs", "retry"]).exit_code != 0
    retried = cli.invoke(args=["jobs", "retry", str(job_id)])
    assert retried.exit_code == 0, retried.output
    assert jobs(app) == [("room-1", JOB_QUEUED, 0)]
    assert cli.invoke(args=["jobs", "retry", "--all-failed"]).output.startswith("Queued 0")
    assert "due 1" in cli.invoke(args=["scheduler", "status"]).output


# -- gunicorn hooks ---------------------------------------------------------------------


@pytest.fixture
def gunicorn_hooks():
    path = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = signal.getsignal(signal.SIGTERM)
    yield module
    signal.signal(signal.SIGTERM, previous)
    if module._runner is not None:
        module._runner.stop()


class Middleware:
    def __init__(self, app):
        self.app = app


def test_the_worker_hooks_start_a_runner_on_the_loaded_app_and_stop_it(app, gunicorn_hooks, caplog):
    caplog.set_level(logging.INFO)
    app.config.update(JOB_POLL_SECONDS=0.05, SCHEDULER_TICK_SECONDS=0.05, SCHEDULER_LEASE_SECONDS=2)
    worker = SimpleNamespace(wsgi=Middleware(app))

    gunicorn_hooks.post_worker_init(worker)
    runner = gunicorn_hooks._runner
    assert runner is not None and runner.app is app
    wait_until(lambda: runner.is_leader)

    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    assert runner.stopping, "SIGTERM stops claiming at once"
    gunicorn_hooks.worker_exit(None, worker)
    assert lease_holder(app) is None


def test_scheduler_enabled_off_starts_nothing(app, gunicorn_hooks):
    app.config["SCHEDULER_ENABLED"] = False
    gunicorn_hooks.post_worker_init(SimpleNamespace(wsgi=app))
    assert gunicorn_hooks._runner is None
    gunicorn_hooks.worker_exit(None, None)


def test_a_worker_opens_its_database_connections_before_its_first_request(app, gunicorn_hooks):
    app.config["SCHEDULER_ENABLED"] = False
    with app.app_context():
        db.engine.dispose()
    gunicorn_hooks.post_worker_init(SimpleNamespace(wsgi=app))
    with app.app_context():
        assert db.engine.pool.checkedin() == gunicorn_hooks.threads + 1
    assert routing.EXTENSION in app.extensions


def test_a_quick_shutdown_gives_running_jobs_no_grace(app, gunicorn_hooks, clock, echo):
    app.config.update(JOB_POLL_SECONDS=0.05, SCHEDULER_TICK_SECONDS=0.05, SCHEDULER_LEASE_SECONDS=2)
    echo.block = True
    enqueue(app, "room-1")
    gunicorn_hooks.post_worker_init(SimpleNamespace(wsgi=app))
    assert echo.started.wait(5)

    gunicorn_hooks.worker_int(None)
    began = time.monotonic()
    gunicorn_hooks.worker_exit(None, None)

    assert time.monotonic() - began < 1
    assert jobs(app) == [("room-1", JOB_RUNNING, 1)], "cut off, to run again after its lease"
    assert lease_holder(app) is None
    echo.release.set()
    wait_until(lambda: not any(t.is_alive() for t in gunicorn_hooks._runner._job_threads))


def test_a_job_queued_in_this_process_wakes_an_idle_pool_at_once(app, echo):
    # Polling alone would leave the job waiting for up to 45 s.
    runner = make_runner(app, poll_seconds=30)
    runner.start()
    try:
        time.sleep(0.3)  # every job thread has found the queue empty and sleeps
        assert echo.calls == []
        enqueue(app, "now")
        assert echo.started.wait(3), "the committed job did not wake the pool"
    finally:
        runner.stop()
    assert [key for key, *_ in echo.calls] == ["now"]


def test_a_rolled_back_enqueue_wakes_nobody(app):
    from app.jobs import wakeup

    before = wakeup.nudges()
    with app.app_context():
        queue.enqueue(ECHO, "never")
        db.session.rollback()
        db.session.commit()
    assert wakeup.nudges() == before
    with app.app_context():
        queue.enqueue(ECHO, "kept")
        db.session.commit()
    assert wakeup.nudges() == before + 1


def test_a_graph_that_stalls_longer_than_every_lease_lapses_none_and_runs_nothing_twice(app, world, monkeypatch):
    """Scaled down from two minutes: Graph answers each request after STALL seconds, longer
    than the scheduler lease and the job lease; renewals and a sync are due at once."""
    import json as jsonlib

    import responses

    from app import clock as app_clock
    from app.graph import tokens
    from app.jobs.handlers import enqueue_link_sync
    from app.subscriptions import jobs as subscription_jobs
    from tests.sync_helpers import GRAPH, delta_url, graph_client, make_room_link, page

    # Each lease is 2 s, renewed every 0.1 s: a busy machine may delay a beat, never twenty.
    stall = 5.0
    app.config["JOB_LEASE_SECONDS"] = 2
    monkeypatch.setattr(subscription_jobs, "graph_client_for", lambda integration: graph_client(max_attempts=1))
    monkeypatch.setattr(tokens, "graph_client_for", lambda integration: graph_client(max_attempts=1))
    with app.app_context():
        link = make_room_link(world)
        link.subscription_id = "sub-1"
        link.subscription_expires_at = app_clock.utcnow() + timedelta(hours=1)  # due for renewal
        enqueue_link_sync(link.id)
        db.session.commit()

    calls = {"batch": 0, "delta": 0}
    ticks_during_stall = []

    def stalled(kind, body):
        def answer(request):
            calls[kind] += 1
            started = time.monotonic()
            while time.monotonic() - started < stall:
                time.sleep(0.25)
                ticks_during_stall.append(last_tick(app))
            return 200, {}, jsonlib.dumps(body(request))

        return answer

    def renewed(request):
        items = jsonlib.loads(request.body)["requests"]
        return {"responses": [{"id": item["id"], "status": 200, "body": {}} for item in items]}

    renewal = PeriodicJob("renew_subscriptions", timedelta(seconds=0.2), subscription_jobs.renew_subscriptions)
    settings = {"tick_seconds": 0.1, "lease_seconds": 2.0, "periodic_jobs": [renewal], "workers": 2}
    first = make_runner(app, holder_id="host:1:a", **settings)
    second = make_runner(app, holder_id="host:2:b", **settings)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, f"{GRAPH}/$batch", callback=stalled("batch", renewed))
        mock.add_callback(
            responses.GET,
            delta_url("room-a@contoso.example"),
            callback=stalled("delta", lambda request: page([], delta_link=f"{GRAPH}/delta?$deltatoken=x")),
        )
        first.start()
        wait_until(lambda: lease_holder(app) == "host:1:a")
        acquired_at = lease_row(app).acquired_at
        second.start()
        try:
            wait_until(lambda: calls["batch"] >= 1 and calls["delta"] >= 1 and jobs(app) == [], timeout=30)
            time.sleep(2.5)  # time enough for a lapsed lease to be taken over
        finally:
            first.stop()
            second.stop()

    assert calls == {"batch": 1, "delta": 1}, "a job or a periodic renewal ran twice"
    assert lease_row(app).acquired_at == acquired_at, "the scheduler lease changed hands during the stall"
    assert len(set(ticks_during_stall)) >= 3, "the heartbeat stopped while Graph stalled"


def lease_row(app):
    with app.app_context():
        row = lease.current()
        db.session.expunge_all()
        db.session.remove()
        return row


def last_tick(app):
    with app.app_context():
        row = lease.current()
        value = row.last_tick_at if row else None
        db.session.remove()
        return value
