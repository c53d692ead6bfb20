"""The portal as it runs in production: gunicorn with its scheduler runners, on a bench
database, against the stand-in, with a fleet of rooms subscribed and synced once.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
from dataclasses import dataclass

import requests

from app.extensions import db
from app.jobs import queue
from app.jobs.handlers import enqueue_link_sync
from app.models import CalendarLink
from app.subscriptions.jobs import SUBSCRIBE_LINK
from bench import harness


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_group(process):
    """SIGTERM the process group `process` leads, as a deploy would; SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class GunicornPortal:
    """`gunicorn -c gunicorn.conf.py wsgi:app` with the bench's settings, in a process group of its own."""

    def __init__(self, settings, log_path, **environment):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings
        self.log_path = log_path
        self.environment = environment
        self.process = None

    def start(self):
        env = self.settings.environment()
        env.update({"BIND": f"127.0.0.1:{self.port}", "PUBLIC_BASE_URL": self.url})
        env.update({name: str(value) for name, value in self.environment.items()})
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [os.path.join(os.path.dirname(harness.PYTHON), "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=harness.ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        harness.wait_for(self._healthy, timeout=60, what="gunicorn answering /healthz")
        return self

    def _healthy(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {self.log_path}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def stop(self):
        stop_group(self.process)

    def metric(self, name):
        """The sum of a counter over its labels, from this instance's /metrics."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
        return sum(float(value) for value in pattern.findall(text))


class RunnerProcess:
    """`flask scheduler run` beside a web-only gunicorn, at a lower CPU priority than the web workers."""

    NICENESS = 19

    def __init__(self, settings, log_path, **environment):
        self.settings = settings
        self.log_path = log_path
        self.environment = environment
        self.process = None

    def start(self):
        env = self.settings.environment()
        env.update({"FLASK_APP": "wsgi", **{name: str(value) for name, value in self.environment.items()}})
        flask = os.path.join(os.path.dirname(harness.PYTHON), "flask")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [flask, "scheduler", "run"],
                cwd=harness.ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=harness.at_lower_priority(self.NICENESS),
            )
        return self

    def stop(self):
        stop_group(self.process)


@dataclass
class LiveFleet:
    stand_in: harness.StandIn
    settings: harness.PortalSettings
    app: object
    fleet: harness.Fleet
    portal: GunicornPortal

    def subscriptions(self):
        """{link id: (mailbox, subscription id, clientState)} as the portal stored them."""
        with self.app.app_context():
            rows = db.session.execute(
                db.select(
                    CalendarLink.id,
                    CalendarLink.mailbox,
                    CalendarLink.subscription_id,
                    CalendarLink.subscription_client_state,
                )
            ).all()
            db.session.remove()
        return {row.id: (row.mailbox, row.subscription_id, row.subscription_client_state) for row in rows}

    def job_counts(self):
        """Jobs `due`, `waiting`, `running` and `failed` right now."""
        with self.app.app_context():
            counts = queue.state_counts()
            db.session.remove()
        return counts

    def idle(self):
        counts = self.job_counts()
        return counts["due"] + counts["waiting"] + counts["running"] == 0


@contextlib.contextmanager
def live_fleet(kind, rooms, *, prepare=None, notification_delay=None, runner_process=False, **environment):
    """A subscribed, synced fleet of `rooms` rooms behind a gunicorn portal on a `kind` database.

    `prepare(stand_in, upns)` runs before anything subscribes (to book rooms); the portal's
    own runners then create every subscription and run every first sync. With
    `runner_process` the gunicorn workers serve requests only and one `flask scheduler
    run` process runs the jobs, as the README's "Running at scale" describes.
    """
    with (
        harness.workdir() as workdir,
        harness.StandIn(notification_delay=notification_delay) as stand_in,
        harness.database(kind, workdir) as url,
    ):
        upns = stand_in.add_tenant_with_rooms(rooms)
        if prepare is not None:
            prepare(stand_in, upns)
        settings = harness.PortalSettings(url, stand_in, workdir)
        app = harness.make_portal(settings, create_schema=True)
        fleet = harness.seed_fleet(app, upns)
        # One metrics directory for both, so the portal's /metrics counts the runner's syncs too.
        environment = {"PROMETHEUS_MULTIPROC_DIR": os.path.join(workdir, "metrics"), **environment}
        web_environment = {**environment, "SCHEDULER_ENABLED": "false"} if runner_process else environment
        portal = GunicornPortal(settings, os.path.join(workdir, "gunicorn.log"), **web_environment)
        runner = RunnerProcess(settings, os.path.join(workdir, "runner.log"), PUBLIC_BASE_URL=portal.url, **environment)
        try:
            portal.start()
            if runner_process:
                runner.start()
            with app.app_context():
                for link_id in fleet.link_ids:
                    queue.enqueue(SUBSCRIBE_LINK, str(link_id))
                    enqueue_link_sync(link_id)
                db.session.commit()
                db.session.remove()
            live = LiveFleet(stand_in, settings, app, fleet, portal)
            harness.wait_for(
                lambda: _all_ready(app), timeout=300, interval=0.5, what="every room subscribed and synced"
            )
            yield live
        finally:
            runner.stop()
            portal.stop()
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def _all_ready(app):
    with app.app_context():
        waiting = db.session.scalar(
            db.select(db.func.count())
            .select_from(CalendarLink)
            .where(db.or_(CalendarLink.subscription_id.is_(None), CalendarLink.delta_link.is_(None)))
        )
        counts = queue.state_counts()
        failed = [f"{job.kind}: {job.last_error}" for job in queue.failed_jobs(limit=3)]
        db.session.remove()
    if failed:
        raise RuntimeError(f"{counts['failed']} job(s) failed while the fleet was being prepared, e.g. {failed}")
    return waiting == 0 and counts["due"] + counts["waiting"] + counts["running"] == 0
