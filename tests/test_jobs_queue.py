import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobs import queue
from app.models import Job
from app.models.job import JOB_FAILED, JOB_QUEUED, JOB_RUNNING

KIND = "test_work"


class Throttled(Exception):
    is_transient = True

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class Refused(Exception):
    is_transient = False


@pytest.fixture
def context(app, database_clock):
    with app.app_context():
        yield app


def all_jobs():
    return db.session.scalars(select(Job).order_by(Job.id).execution_options(populate_existing=True)).all()


def states():
    return sorted(job.state for job in all_jobs())


def enqueued(key, **kwargs):
    job = queue.enqueue(KIND, key, **kwargs)
    db.session.commit()
    return job


# -- coalescing -----------------------------------------------------------------------------


def test_a_burst_of_enqueues_for_one_key_leaves_one_job(context):
    first = queue.enqueue(KIND, "room-1")
    for _ in range(999):
        assert queue.enqueue(KIND, "room-1").id == first.id
    queue.enqueue(KIND, "room-2")
    db.session.commit()

    assert [(job.key, job.state) for job in all_jobs()] == [("room-1", JOB_QUEUED), ("room-2", JOB_QUEUED)]


def test_enqueue_during_a_run_queues_exactly_one_more(context):
    enqueued("room-1")
    running = queue.claim("worker-a")

    for _ in range(50):
        queue.enqueue(KIND, "room-1")
    db.session.commit()

    assert states() == [JOB_QUEUED, JOB_RUNNING]
    assert running.id in {job.id for job in all_jobs() if job.state == JOB_RUNNING}


def test_enqueue_joins_the_callers_transaction(context):
    queue.enqueue(KIND, "room-1")
    db.session.rollback()
    assert all_jobs() == []


def test_coalesced_payloads_keep_a_requested_full_sync(context):
    enqueued("room-1")
    enqueued("room-1", payload={"full": True})
    job = enqueued("room-1", payload={"full": False})

    assert job.payload == {"full": True}
    assert len(all_jobs()) == 1


def test_a_coalesced_enqueue_keeps_the_pending_run_time(context, clock):
    later = clock.now + timedelta(minutes=10)
    job = enqueued("room-1", run_at=later)
    enqueued("room-1")
    db.session.refresh(job)
    assert job.run_at == later


# -- claiming -------------------------------------------------------------------------------


def test_claim_takes_due_jobs_oldest_run_at_first(context, clock):
    enqueued("late", run_at=clock.now - timedelta(seconds=10))
    enqueued("early", run_at=clock.now - timedelta(minutes=5))
    enqueued("future", run_at=clock.now + timedelta(minutes=1))

    assert queue.claim("w").key == "early"
    assert queue.claim("w").key == "late"
    assert queue.claim("w") is None
    clock.advance(timedelta(minutes=1))
    assert queue.claim("w").key == "future"


def test_claim_marks_the_job_running_under_a_lease(context, clock):
    context.config["JOB_LEASE_SECONDS"] = 120
    enqueued("room-1", payload={"full": True})

    claimed = queue.claim("host:1:abc/0")

    job = all_jobs()[0]
    assert (job.state, job.attempts, job.claimed_by) == (JOB_RUNNING, 1, "host:1:abc/0")
    assert job.lease_expires_at == clock.now + timedelta(seconds=120)
    assert (claimed.kind, claimed.key, claimed.payload, claimed.attempts) == (KIND, "room-1", {"full": True}, 1)


def test_claim_takes_only_the_kinds_asked_for(context):
    enqueued("room-1")
    assert queue.claim("w", kinds=["other_kind"]) is None
    assert queue.claim("w", kinds=[KIND]).key == "room-1"


def test_a_key_never_runs_twice_at_once(context):
    enqueued("room-1")
    first = queue.claim("w1")
    enqueued("room-1")
    enqueued("room-2")

    assert queue.claim("w2").key == "room-2"
    assert queue.claim("w2") is None

    assert queue.complete(first)
    assert queue.claim("w2").key == "room-1"


def test_complete_removes_the_job(context):
    enqueued("room-1")
    assert queue.complete(queue.claim("w"))
    assert all_jobs() == []


# -- failures, backoff, parking ------------------------------------------------------------


def test_transient_failures_back_off_exponentially_then_park_with_the_error(context, clock):
    enqueued("room-1")
    waits = []
    for attempt in range(1, 9):
        job = queue.claim("w")
        assert job.attempts == attempt
        outcome = queue.fail(job, Throttled(f"busy {attempt}"))
        if outcome == JOB_QUEUED:
            waiting = all_jobs()[0]
            waits.append((waiting.run_at - clock.now).total_seconds())
            assert queue.claim("w") is None, "not before its run time"
            clock.advance(waiting.run_at - clock.now)

    assert outcome == JOB_FAILED
    expected = [30, 60, 120, 240, 480, 960, 1920]
    assert len(waits) == len(expected)
    for wait, base in zip(waits, expected, strict=True):
        assert base <= wait <= base * 1.1
    parked = all_jobs()[0]
    assert (parked.state, parked.attempts) == (JOB_FAILED, 8)
    assert parked.last_error == "Throttled: busy 8"
    assert parked.lease_expires_at is None
    assert queue.claim("w") is None


def test_backoff_is_capped_at_an_hour():
    assert timedelta(hours=1) <= queue.backoff(20) <= timedelta(hours=1.1)


def test_the_attempt_cap_is_a_setting(context, clock):
    context.config["JOB_MAX_ATTEMPTS"] = 2
    enqueued("room-1")
    assert queue.fail(queue.claim("w"), Throttled("busy")) == JOB_QUEUED
    clock.advance(timedelta(minutes=1))
    assert queue.fail(queue.claim("w"), Throttled("busy")) == JOB_FAILED
    assert all_jobs()[0].attempts == 2


def test_retry_after_from_the_error_is_respected(context, clock):
    enqueued("room-1")
    queue.fail(queue.claim("w"), Throttled("slow down", retry_after=600))
    assert 600 <= (all_jobs()[0].run_at - clock.now).total_seconds() <= 660

    clock.advance(timedelta(seconds=700))
    # A Retry-After shorter than the backoff does not shorten it.
    queue.fail(queue.claim("w"), Throttled("slow down", retry_after=5))
    assert 60 <= (all_jobs()[0].run_at - clock.now).total_seconds() <= 66


def test_retry_after_and_transience_can_be_given_explicitly(context, clock):
    enqueued("room-1")
    queue.fail(queue.claim("w"), RuntimeError("boom"), retry_after=90)
    assert 90 <= (all_jobs()[0].run_at - clock.now).total_seconds() <= 99

    clock.advance(timedelta(minutes=5))
    assert queue.fail(queue.claim("w"), RuntimeError("boom"), transient=False) == JOB_FAILED


def test_a_non_transient_error_parks_at_once(context):
    enqueued("room-1")
    assert queue.fail(queue.claim("w"), Refused("access denied for room-1")) == JOB_FAILED

    parked = all_jobs()[0]
    assert (parked.state, parked.attempts) == (JOB_FAILED, 1)
    assert parked.last_error == "Refused: access denied for room-1"


def test_a_failure_while_another_run_is_pending_folds_into_it(context, clock):
    enqueued("room-1", payload={"full": True})
    job = queue.claim("w")
    enqueued("room-1")

    queue.fail(job, Throttled("busy", retry_after=300))

    (pending,) = all_jobs()
    assert pending.state == JOB_QUEUED
    assert pending.payload == {"full": True}
    assert pending.attempts == 1
    assert pending.run_at >= clock.now + timedelta(seconds=300)
    assert pending.last_error == "Throttled: busy"


def test_only_the_latest_failure_of_a_key_is_kept_and_success_clears_it(context):
    for _ in range(3):
        enqueued("room-1")
        queue.fail(queue.claim("w"), Refused("no access"))
    assert states() == [JOB_FAILED]

    enqueued("room-1")
    queue.complete(queue.claim("w"))
    assert all_jobs() == []


def test_retry_requeues_a_parked_job_with_a_fresh_budget(context, clock):
    enqueued("room-1", payload={"full": True})
    queue.fail(queue.claim("w"), Refused("no access"))
    parked_id = all_jobs()[0].id

    job = queue.retry(parked_id)

    assert (job.id, job.state, job.attempts, job.run_at) == (parked_id, JOB_QUEUED, 0, clock.now)
    assert queue.claim("w").payload == {"full": True}
    assert queue.retry(parked_id) is None, "only parked jobs can be retried"


def test_retry_merges_into_a_job_already_pending(context):
    enqueued("room-1", payload={"full": True})
    queue.fail(queue.claim("w"), Refused("no access"))
    pending = enqueued("room-1")

    assert queue.retry(all_jobs()[0].id).id == pending.id
    (job,) = all_jobs()
    assert (job.state, job.payload) == (JOB_QUEUED, {"full": True})


def test_retry_all_failed(context):
    for key in ("room-1", "room-2"):
        enqueued(key)
        queue.fail(queue.claim("w"), Refused("no access"))
    assert queue.retry_all_failed() == 2
    assert states() == [JOB_QUEUED, JOB_QUEUED]


# -- leases ---------------------------------------------------------------------------------


def test_a_job_whose_lease_expired_is_claimed_again(context, clock):
    context.config["JOB_LEASE_SECONDS"] = 60
    enqueued("room-1")
    lost = queue.claim("dead-worker")
    clock.advance(timedelta(seconds=59))
    assert queue.claim("w2") is None

    clock.advance(timedelta(seconds=2))
    again = queue.claim("w2")

    assert (again.id, again.attempts, again.claimed_by) == (lost.id, 2, "w2")
    assert not queue.complete(lost), "the first worker no longer owns it"
    assert queue.fail(lost, Throttled("late")) is None
    assert states() == [JOB_RUNNING]
    assert queue.complete(again)
    assert all_jobs() == []


def test_a_host_whose_clock_runs_ahead_cannot_take_a_job_another_host_still_holds(context, monkeypatch):
    from app.database import server_time

    context.config["JOB_LEASE_SECONDS"] = 60
    database = server_time.database_now()  # frozen: `context` makes it follow the test's clock
    monkeypatch.setattr(server_time, "database_now", lambda: database)
    enqueued("room-1", run_at=database - timedelta(hours=1))
    slow_host = queue.claim("slow-host:1:a/0", now=database - timedelta(minutes=5))
    assert slow_host is not None

    # Five minutes ahead of the slow host, this one thinks the lease long expired;
    # on the database's clock it has a minute to go.
    assert queue.claim("fast-host:2:b/0", now=database) is None
    assert queue.extend_lease(slow_host)
    assert all_jobs()[0].lease_expires_at == database + timedelta(seconds=60)


def test_extending_a_lease_keeps_the_job_ours(context, clock):
    context.config["JOB_LEASE_SECONDS"] = 60
    enqueued("room-1")
    job = queue.claim("w1")
    clock.advance(timedelta(seconds=50))
    assert queue.extend_lease(job)
    clock.advance(timedelta(seconds=50))

    assert queue.claim("w2") is None
    assert all_jobs()[0].lease_expires_at == clock.now + timedelta(seconds=10)


def test_a_job_that_keeps_killing_its_worker_is_parked(context, clock):
    context.config["JOB_MAX_ATTEMPTS"] = 3
    context.config["JOB_LEASE_SECONDS"] = 60
    enqueued("room-1")
    for _ in range(3):
        assert queue.claim("w") is not None
        clock.advance(timedelta(minutes=2))

    assert queue.claim("w") is None
    parked = all_jobs()[0]
    assert (parked.state, parked.attempts) == (JOB_FAILED, 3)
    assert "stopped without finishing" in parked.last_error


# -- portal queries -------------------------------------------------------------------------


def test_queue_figures_for_the_portal(context, clock):
    enqueued("room-1", run_at=clock.now - timedelta(minutes=3))
    enqueued("room-2")
    enqueued("room-3", run_at=clock.now + timedelta(minutes=5))
    enqueued("room-4")
    queue.fail(_claim_key("room-4"), Refused("no access"))
    queue.enqueue("other_kind", "x")
    db.session.commit()
    queue.claim("w", kinds=["other_kind"])

    assert queue.queue_depth() == 3
    assert queue.queue_depth(KIND) == 3
    assert queue.state_counts() == {"due": 2, "waiting": 1, JOB_RUNNING: 1, JOB_FAILED: 1}
    assert queue.oldest_queued_age() == timedelta(minutes=3)
    assert [job.key for job in queue.failed_jobs(KIND)] == ["room-4"]
    assert queue.failed_jobs(KIND, keys=["room-1"]) == []


def _claim_key(key):
    job = db.session.scalar(select(Job).where(Job.key == key))
    job.run_at = job.run_at - timedelta(hours=1)
    db.session.commit()
    return queue.claim("w")


def test_oldest_queued_age_is_none_when_nothing_is_due(context):
    assert queue.oldest_queued_age() is None


# -- concurrency ----------------------------------------------------------------------------


def claim_in_parallel(app, claimants, complete):
    """Claimants in threads, each with its own app context and session, claiming until empty."""
    taken = [[] for _ in range(claimants)]
    errors = []
    start = threading.Barrier(claimants)

    def claimant(index):
        try:
            start.wait()
            while True:
                with app.app_context():
                    job = queue.claim(f"w{index}")
                    if job is None:
                        return
                    taken[index].append(job)
                    if complete:
                        queue.complete(job)
        except Exception as error:  # reported below, with the thread that raised it
            errors.append(error)

    threads = [threading.Thread(target=claimant, args=(i,)) for i in range(claimants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return [job for jobs in taken for job in jobs]


def test_parallel_claimants_never_get_the_same_job(context):
    for number in range(120):
        queue.enqueue(KIND, f"room-{number}")
    db.session.commit()

    taken = claim_in_parallel(context, claimants=6, complete=True)

    ids = [job.id for job in taken]
    assert len(ids) == len(set(ids)) == 120
    assert all_jobs() == []


def test_parallel_claimants_run_each_key_once_at_a_time(context, clock):
    context.config["JOB_LEASE_SECONDS"] = 60
    keys = [f"room-{number}" for number in range(30)]
    for key in keys:
        queue.enqueue(KIND, key)
    db.session.commit()
    for _ in keys:
        queue.claim("dead-worker")
    for key in keys:
        queue.enqueue(KIND, key)
    db.session.commit()
    clock.advance(timedelta(minutes=2))

    # Nobody completes: every key's abandoned run is taken again, its pending job must wait.
    taken = claim_in_parallel(context, claimants=6, complete=False)

    assert sorted(job.key for job in taken) == sorted(keys)
    assert all(job.attempts == 2 for job in taken)
    assert states().count(JOB_QUEUED) == 30


# -- handlers -------------------------------------------------------------------------------


@pytest.fixture
def link_ids(app, world):
    from app.models import CalendarLink, Integration

    with app.app_context():
        ids = {}
        for name in ("first", "second"):
            integration = Integration(organisation_id=world.a.org, name=f"Rooms {name}")
            db.session.add(integration)
            db.session.flush()
            link = CalendarLink(
                integration_id=integration.id, mailbox=f"{name}@rooms.example", object_id=world.a.object
            )
            db.session.add(link)
            db.session.flush()
            ids[name] = (integration.id, link.id)
        db.session.commit()
        return ids


def test_the_sync_handler_is_registered_and_a_kind_has_one_handler():
    from app.jobs import handlers

    assert handlers.SYNC_LINK in handlers.load_handlers()
    with pytest.raises(ValueError):
        handlers.handler(handlers.SYNC_LINK)(lambda key, payload: None)


def test_enqueue_link_sync_queues_one_sync_per_link(context):
    from app.jobs.handlers import SYNC_LINK, enqueue_link_sync

    enqueue_link_sync(7)
    enqueue_link_sync(7, full=True)
    enqueue_link_sync(7)
    db.session.commit()

    (job,) = all_jobs()
    assert (job.kind, job.key, job.payload) == (SYNC_LINK, "7", {"full": True})


def test_the_sync_handler_runs_the_engine_for_enabled_links_only(context, link_ids, monkeypatch):
    import sys
    from types import SimpleNamespace

    from app.jobs.handlers import run_link_sync
    from app.models import CalendarLink

    calls = []
    # A stand-in engine: the handler imports it at run time.
    monkeypatch.setitem(
        sys.modules, "app.sync.engine", SimpleNamespace(sync_link=lambda link_id, full: calls.append((link_id, full)))
    )
    first = link_ids["first"][1]
    run_link_sync(str(first), {"full": True})
    run_link_sync("999999", {})
    db.session.get(CalendarLink, first).enabled = False
    db.session.commit()
    run_link_sync(str(first), {})

    assert calls == [(first, True)]


def test_failed_link_syncs_of_one_integration(context, link_ids):
    from app.jobs.handlers import enqueue_link_sync, failed_link_syncs

    for _, link_id in link_ids.values():
        enqueue_link_sync(link_id)
    db.session.commit()
    for _ in link_ids:
        queue.fail(queue.claim("w"), Refused("no access"))

    integration_id, link_id = link_ids["second"]
    assert [job.key for job in failed_link_syncs(integration_id)] == [str(link_id)]


def test_ensure_queued_adds_one_pending_job_per_key_in_one_go_and_keeps_pending_ones(app):
    with app.app_context():
        queue.enqueue("sync_link", "1", payload={"full": True})
        db.session.commit()
        queue.ensure_queued("sync_link", [1, "2", 3, 2])
        db.session.commit()
        pending = db.session.scalars(db.select(Job).where(Job.state == JOB_QUEUED).order_by(Job.key)).all()
        assert [(job.key, job.payload) for job in pending] == [("1", {"full": True}), ("2", {}), ("3", {})]
