"""gunicorn settings for the portal; `BIND` and `WEB_CONCURRENCY` override the defaults.

The hooks start the background scheduler in every worker once the app is loaded, and stop
it when the worker exits. Every worker may run one: the scheduler lease in the database
decides which of them runs the periodic jobs, and all of them run queued jobs. Nothing
starts in the master (`on_starting`, `when_ready`) or in `post_fork`, before the app exists;
`on_starting` only prepares the directory where the workers' Prometheus metrics meet.
"""

import glob
import os
import shutil
import signal
import tempfile

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 60
# Longer than SCHEDULER_SHUTDOWN_GRACE_SECONDS (20), so running jobs can finish on SIGTERM.
graceful_timeout = 30
accesslog = "-"
# Load the app in each worker, never in the master: pooled database connections must
# not cross a fork.
preload_app = False

# The runner of this worker process (each worker has its own copy of this module's globals).
_runner = None
# SIGINT/SIGQUIT ask gunicorn for a quick shutdown: then running jobs get no grace period.
_quick_exit = False


# The directory where every worker writes its Prometheus counters (see `on_starting`).
_metrics_dir_created = None


def on_starting(server):
    """Give the workers' metrics one fresh directory: PROMETHEUS_MULTIPROC_DIR, or a new temporary one.

    Runs in the master before any worker starts, so every worker inherits the setting
    before it imports prometheus_client. Files of a previous run are removed, so counters
    start from zero with the server.
    """
    global _metrics_dir_created
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.db")):
            os.remove(stale)
    else:
        directory = _metrics_dir_created = tempfile.mkdtemp(prefix="ireserve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def child_exit(server, worker):
    """A worker is gone (master side): drop its live gauge files; its counters stay counted."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_dir_created:
        shutil.rmtree(_metrics_dir_created, ignore_errors=True)


def post_worker_init(worker):
    """The app is loaded in this worker: warm it up, start its scheduler runner unless SCHEDULER_ENABLED is off."""
    global _runner
    from app.scheduler.runner import start_for_server
    from app.webhook.warm_up import warm_up

    app = _flask_app(worker.wsgi)
    # One connection per request thread, and one for the runner's lease and clock.
    warm_up(app, connections=threads + 1)
    _runner = start_for_server(app)
    if _runner is not None:
        _stop_claiming_on_sigterm(_runner)


def worker_int(worker):
    """SIGINT or SIGQUIT (quick shutdown): stop claiming jobs; `worker_exit` follows at once."""
    global _quick_exit
    _quick_exit = True
    if _runner is not None:
        _runner.request_stop()


def worker_exit(server, worker):
    """The worker is leaving: let running jobs finish within the grace period, release the lease.

    A job cut off (quick shutdown, or the grace period ran out) runs again elsewhere once
    its lease has expired.
    """
    if _runner is not None:
        _runner.stop(grace_seconds=0 if _quick_exit else None)


def _stop_claiming_on_sigterm(runner):
    # gunicorn's own SIGTERM handler only ends the request loop; waiting for open requests
    # may take a while, and no new job should be claimed meanwhile.
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        runner.request_stop()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    # Keep gunicorn's choice: SIGTERM must not interrupt system calls of running requests.
    signal.siginterrupt(signal.SIGTERM, False)


def _flask_app(wsgi):
    """The Flask app behind the loaded WSGI callable, unwrapping middleware that keeps it as `.app`."""
    from flask import Flask

    candidate = wsgi
    while not isinstance(candidate, Flask) and hasattr(candidate, "app"):
        candidate = candidate.app
    if not isinstance(candidate, Flask):
        raise RuntimeError("gunicorn.conf.py: the WSGI callable is not the portal's Flask app")
    return candidate
