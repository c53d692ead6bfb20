"""The scheduler runner: a heartbeat thread, a loop thread and a small pool of job threads per process.

The heartbeat thread does nothing but keep leases alive: every tick it takes or renews
the scheduler lease and extends the leases of the jobs running here, so neither lapses
however long a job or a periodic run waits on Graph. The loop thread drives a
`schedule.Scheduler` of its own; only while this process holds the scheduler lease does
it run the periodic jobs, one after another in this one thread, so a periodic job never
overlaps itself (and, the lease being single, never runs in two processes). Periodic
jobs only read the database and enqueue jobs; whatever talks to Graph runs as a job.

Every process, lease holder or not, runs `JOB_WORKERS` job threads that claim and run
queued jobs, so sync work spreads over all instances. Each claim and each job runs in its
own app context, whose session is removed afterwards.

Stopping (`request_stop`, safe inside a signal handler, then `stop`) ends claiming at
once, lets running jobs finish for up to the grace period and releases the lease. A job
still running after the grace period is cut off with the process; its lease expires and
another worker runs it again, so nothing is lost.
"""

import logging
import random
import signal
import threading
import time

import schedule

from app import clock
from app.extensions import db
from app.jobs import handlers, queue, wakeup
from app.scheduler import lease, periodic

log = logging.getLogger(__name__)


class Runner:
    """Periodic jobs under the lease, plus the job pool, for one process.

    Settings come from the app config (JOB_WORKERS, JOB_POLL_SECONDS, SCHEDULER_TICK_SECONDS,
    SCHEDULER_LEASE_SECONDS, SCHEDULER_SHUTDOWN_GRACE_SECONDS); keyword arguments override
    them, and `periodic_jobs` replaces the registered periodic jobs (tests pass their own).
    """

    def __init__(
        self,
        app,
        *,
        holder_id=None,
        workers=None,
        periodic_jobs=None,
        poll_seconds=None,
        tick_seconds=None,
        lease_seconds=None,
        grace_seconds=None,
    ):
        def setting(given, name, default):
            return float(given if given is not None else app.config.get(name, default))

        self.app = app
        self.holder_id = holder_id or lease.make_holder_id()
        self.workers = int(setting(workers, "JOB_WORKERS", 4))
        self.poll_seconds = setting(poll_seconds, "JOB_POLL_SECONDS", 2)
        self.tick_seconds = setting(tick_seconds, "SCHEDULER_TICK_SECONDS", 10)
        self.lease_seconds = setting(lease_seconds, "SCHEDULER_LEASE_SECONDS", 45)
        self.grace_seconds = setting(grace_seconds, "SCHEDULER_SHUTDOWN_GRACE_SECONDS", 20)
        if self.lease_seconds <= self.tick_seconds:
            raise ValueError("SCHEDULER_LEASE_SECONDS must exceed SCHEDULER_TICK_SECONDS, or the lease lapses")
        self.periodic_jobs = periodic_jobs
        self._stop = threading.Event()
        self._scheduler = schedule.Scheduler()
        self._loop_thread = None
        self._heartbeat_thread = None
        self._heartbeat_stop = threading.Event()
        self._job_threads = []
        self._running_jobs = {}
        self._running_lock = threading.Lock()
        self._leader_until = 0.0
        self._kinds = ()

    # -- life cycle ---------------------------------------------------------------------

    def start(self):
        """Start the loop thread and the job threads; returns at once."""
        if self._loop_thread is not None:
            raise RuntimeError("this runner has been started already")
        if self.periodic_jobs is None:
            self.periodic_jobs = periodic.load_periodic_jobs()
            if periodic.empty_slots():
                log.info("Periodic slots without a job yet: %s", ", ".join(periodic.empty_slots()))
        self._kinds = handlers.load_handlers()
        for job in self.periodic_jobs:
            self._scheduler.every(job.every.total_seconds()).seconds.do(self._run_periodic, job)

        # Daemon threads: a job cut off at exit must not keep the process alive; its lease covers it.
        self._heartbeat_thread = threading.Thread(target=self._beat, name="scheduler-heartbeat", daemon=True)
        self._loop_thread = threading.Thread(target=self._loop, name="scheduler-loop", daemon=True)
        self._job_threads = [
            threading.Thread(target=self._work, args=(slot,), name=f"job-worker-{slot}", daemon=True)
            for slot in range(self.workers)
        ]
        self._heartbeat_thread.start()
        self._loop_thread.start()
        for thread in self._job_threads:
            thread.start()
        log.info("Scheduler runner %s started with %s job thread(s)", self.holder_id, self.workers)

    def request_stop(self):
        """Stop claiming jobs and running periodic ones; safe to call from a signal handler."""
        self._stop.set()

    @property
    def stopping(self):
        return self._stop.is_set()

    def stop(self, grace_seconds=None):
        """Stop, wait up to the grace period for running jobs, release the lease.

        Returns True when every job thread finished within the grace period.
        """
        self.request_stop()
        # Idle job threads sleep in `wakeup.wait`; they see the stop at once.
        wakeup.nudge()
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        deadline = time.monotonic() + grace
        for thread in self._job_threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._loop_thread is not None:
            self._loop_thread.join(max(0.0, deadline - time.monotonic()) + self.tick_seconds)
        # Only now: the heartbeat kept the leases of finishing jobs alive during the grace period.
        self._heartbeat_stop.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(self.tick_seconds + 5)
        cut_off = self.running_jobs()
        for job in cut_off:
            log.warning("Job %s %s:%s cut off at shutdown; it runs again after its lease", job.id, job.kind, job.key)
        self._release_lease()
        log.info("Scheduler runner %s stopped", self.holder_id)
        return not cut_off

    def run_until_stopped(self):
        """Run in the foreground until SIGTERM or Ctrl-C, then stop cleanly (`flask scheduler run`).

        Call from the main thread. Returns what `stop` returns.
        """
        stop_signals = (signal.SIGTERM, signal.SIGINT)
        previous = {signum: signal.signal(signum, lambda *_: self.request_stop()) for signum in stop_signals}
        try:
            self.start()
            # Sleep rather than wait on the Event: the signal handler sets that Event, and
            # this thread must not hold the Event's lock when the handler interrupts it.
            while not self.stopping:
                time.sleep(0.1)
        finally:
            # Restored before the grace period, so a second Ctrl-C ends it at once.
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.stop()

    # -- state for callers --------------------------------------------------------------

    @property
    def is_leader(self):
        """Whether this process holds the scheduler lease, with a tick's margin before it expires."""
        return time.monotonic() < self._leader_until

    def running_jobs(self):
        with self._running_lock:
            return list(self._running_jobs.values())

    # -- the heartbeat thread -------------------------------------------------------------

    def _beat(self):
        self._tick()
        while not self._heartbeat_stop.wait(self.tick_seconds):
            self._tick()

    def _tick(self):
        """Take or renew the scheduler lease (unless stopping); extend the leases of the jobs running here."""
        with self.app.app_context():
            if not self._stop.is_set():
                # Stopping: never take the lease back after `stop` released it.
                self._renew_scheduler_lease()
            for job in self.running_jobs():
                try:
                    queue.extend_lease(job)
                except Exception:
                    db.session.rollback()
                    log.exception("Lease of job %s could not be extended", job.id)
                finally:
                    db.session.remove()

    def _renew_scheduler_lease(self):
        try:
            asked_at = time.monotonic()
            if lease.acquire(self.holder_id, ttl=self.lease_seconds):
                if not self.is_leader:
                    log.info("Scheduler runner %s now holds the scheduler lease", self.holder_id)
                # Measured from before the request, minus one tick, so we stop acting
                # as holder before the database could consider the lease expired.
                self._leader_until = asked_at + self.lease_seconds - self.tick_seconds
            else:
                self._leader_until = 0.0
        except Exception:
            db.session.rollback()
            log.exception("Scheduler lease could not be renewed")
        finally:
            db.session.remove()

    # -- the loop thread ----------------------------------------------------------------

    def _loop(self):
        while not self._stop.is_set():
            self._scheduler.run_pending()
            idle = self._scheduler.idle_seconds
            self._stop.wait(min(max(idle if idle is not None else self.tick_seconds, 0.01), self.tick_seconds))

    def _run_periodic(self, job):
        # `schedule` does not catch exceptions: one failing job must not end the loop.
        if not self.is_leader or self._stop.is_set():
            return
        with self.app.app_context():
            try:
                job.function(clock.utcnow())
            except Exception:
                db.session.rollback()
                log.exception("Periodic job %s failed", job.name)
            finally:
                db.session.remove()

    def _release_lease(self):
        with self.app.app_context():
            try:
                lease.release(self.holder_id)
            except Exception:
                db.session.rollback()
                log.exception("Scheduler lease could not be released; it expires by itself")
            finally:
                db.session.remove()
        self._leader_until = 0.0

    # -- the job threads ----------------------------------------------------------------

    def _work(self, slot):
        worker_id = f"{self.holder_id}/{slot}"
        while not self._stop.is_set():
            seen = wakeup.nudges()
            try:
                ran = self._run_next_job(worker_id, slot)
            except Exception:
                log.exception("Job thread %s hit an error", worker_id)
                ran = False
            if not ran and not self._stop.is_set():
                # Jitter keeps the threads of many processes from polling in step; a job
                # queued in this process wakes them sooner (see app.jobs.wakeup).
                wakeup.wait(seen, self.poll_seconds * random.uniform(0.5, 1.5))

    def _run_next_job(self, worker_id, slot):
        with self.app.app_context():
            try:
                job = queue.claim(worker_id, self._kinds)
                if job is None:
                    return False
                with self._running_lock:
                    self._running_jobs[slot] = job
                try:
                    self._execute(job)
                finally:
                    with self._running_lock:
                        self._running_jobs.pop(slot, None)
                return True
            finally:
                db.session.remove()

    def _execute(self, job):
        run = handlers.handler_for(job.kind)
        try:
            if run is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            run(job.key, job.payload)
        except Exception as error:
            # Errors that do not say whether they are transient are unexpected: keep the traceback.
            log.warning(
                "Job %s %s:%s attempt %s failed: %s",
                job.id,
                job.kind,
                job.key,
                job.attempts,
                queue.describe_error(error),
                exc_info=not hasattr(error, "is_transient"),
            )
            queue.fail(job, error)
        else:
            queue.complete(job)


def start_for_server(app):
    """Start a runner in this server process unless SCHEDULER_ENABLED is off; return it or None."""
    if not app.config.get("SCHEDULER_ENABLED", True):
        log.info("Scheduler disabled (SCHEDULER_ENABLED is off); this process runs no background jobs")
        return None
    runner = Runner(app)
    runner.start()
    return runner
