"""Two portal instances, each a real gunicorn master with two workers, sharing one PostgreSQL schema.

Each instance is `gunicorn -c gunicorn.conf.py tests.scaleout.launcher:app`, started in a
session of its own so a test can SIGKILL its whole process group (master and workers,
with nothing released and nothing finished). The repository's gunicorn.conf.py is used as
is: its hooks start a scheduler runner in every worker, so two instances run four runners.

Settings are short so the tests stay quick: a 6 s scheduler lease renewed every second,
5 s job leases (a job cut off by a kill runs again soon), idle job threads polling every
0.2 s. What each instance writes to stdout and stderr stays in files under tmp_path;
failing assertions show their tails.
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.extensions import db
from app.jobs.handlers import SYNC_LINK
from app.models import BookableObject, Booking, CalendarLink, Integration
from tests.e2e.helpers import DOMAIN, TENANT
from tests.live import eventually

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"

WORKERS_PER_INSTANCE = 2
LEASE_SECONDS = 6
TICK_SECONDS = 1
JOB_LEASE_SECONDS = 5

INSTANCE_SETTINGS = {
    "WEB_CONCURRENCY": str(WORKERS_PER_INSTANCE),
    "GUNICORN_THREADS": "4",
    "JOB_WORKERS": "2",
    "JOB_POLL_SECONDS": "0.2",
    "JOB_LEASE_SECONDS": str(JOB_LEASE_SECONDS),
    "SCHEDULER_ENABLED": "true",
    "SCHEDULER_LEASE_SECONDS": str(LEASE_SECONDS),
    "SCHEDULER_TICK_SECONDS": str(TICK_SECONDS),
    "METRICS_ALLOW": "127.0.0.1/32",
    "LOG_LEVEL": "INFO",
    # The stand-in speaks plain http; requests-oauthlib refuses that without this.
    "OAUTHLIB_INSECURE_TRANSPORT": "1",
    "PYTHONUNBUFFERED": "1",
}
# Only these are taken from the test's own environment: a developer's DATABASE_URL,
# METRICS_TOKEN or PROMETHEUS_MULTIPROC_DIR must not reach the instances.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")

# holder ids are "host:pid:random", job claims add "/slot".
_PID_IN_HOLDER = re.compile(r":(\d+):[0-9a-f]+(?:/\d+)?$")
_RUNNER_STARTED = re.compile(r"Scheduler runner (\S+) started")
_RUNNER_TOOK_LEASE = re.compile(r"Scheduler runner (\S+) now holds the scheduler lease")


def pid_of(holder):
    """The process id inside a lease holder id or a job's `claimed_by`; None if there is none."""
    found = _PID_IN_HOLDER.search(holder or "")
    return int(found.group(1)) if found else None


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid):
    """Processes whose parent is *pid*: a gunicorn master's workers."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name in parentheses may hold spaces; the parent pid is the second field after it.
            after_name = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(after_name[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def _tail(path, lines):
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(nothing written)"
    return "\n".join(content[-lines:])


class Instance:
    """One portal instance: a gunicorn master with its workers, restartable after a kill."""

    def __init__(self, name, directory, environment):
        self.name = name
        self.directory = directory
        self.environment = environment
        self.process = None
        self.port = None
        self.starts = 0
        self.stdout_path = self.stderr_path = None

    def __repr__(self):
        return f"<instance {self.name} on port {self.port}>"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self):
        return self.process is not None and self.process.poll() is None

    def start(self):
        self.starts += 1
        self.port = _free_port()
        run = self.directory / f"run-{self.starts}"
        run.mkdir(parents=True)
        self.stdout_path, self.stderr_path = run / "stdout.log", run / "stderr.log"
        environment = {
            **self.environment,
            "BIND": f"127.0.0.1:{self.port}",
            "PUBLIC_BASE_URL": self.url,
            # A fresh directory per start: counters begin at zero with the master, as in production.
            "PROMETHEUS_MULTIPROC_DIR": str(run / "metrics"),
            "SCALEOUT_INSTANCE_PATH": str(self.directory / "instance"),
        }
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [str(GUNICORN), "-c", "gunicorn.conf.py", "tests.scaleout.launcher:app"],
                cwd=REPO,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )

    def wait_ready(self, timeout=40):
        """Until /healthz answers and every worker has started its scheduler runner."""

        def ready():
            if not self.alive:
                raise AssertionError(f"{self} exited with {self.process.returncode}\n{self.tail()}")
            try:
                healthy = requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False
            return healthy and len(self.runner_ids()) >= WORKERS_PER_INSTANCE

        eventually(ready, timeout=timeout, interval=0.1, message=f"{self} did not come up\n{self.tail()}")

    def kill(self):
        """SIGKILL the master and all its workers at once: nothing is released, nothing finishes."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)

    def worker_pids(self):
        return _children(self.process.pid) if self.alive else []

    def runner_ids(self):
        """Runners started by this start of the instance, from its log."""
        return _RUNNER_STARTED.findall(self.stderr())

    def lease_takeovers(self):
        """Runners of this start that logged taking the scheduler lease."""
        return _RUNNER_TOOK_LEASE.findall(self.stderr())

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def notify(self, rooms):
        """POST one change notification per room to this instance's webhook, as Graph would."""
        answer = requests.post(
            f"{self.url}/webhooks/graph", json={"value": [room.notification() for room in rooms]}, timeout=10
        )
        assert answer.status_code == 202, f"{self}: {answer.status_code} {answer.text}\n{self.tail()}"
        assert answer.json()["accepted"] == len(rooms), answer.text
        return answer.json()

    def syncs(self, result="ok"):
        """ireserve_syncs_total of this instance (all its workers), for one result."""
        answer = requests.get(f"{self.url}/metrics", timeout=10)
        assert answer.status_code == 200, f"{self}: /metrics answered {answer.status_code}: {answer.text}"
        total = 0.0
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                if sample.name == "ireserve_syncs_total" and sample.labels.get("result") == result:
                    total += sample.value
        return int(total)

    def tail(self, lines=40):
        return (
            f"--- {self.name} (start {self.starts}, port {self.port}) stderr, last {lines} lines:\n"
            f"{_tail(self.stderr_path, lines) if self.stderr_path else ''}\n"
            f"--- {self.name} stdout (access log), last 5 lines:\n"
            f"{_tail(self.stdout_path, 5) if self.stdout_path else ''}"
        )


@dataclass(frozen=True)
class Room:
    """A room mailbox in the stand-in, linked to an object of the portal by a subscribed calendar link."""

    upn: str
    link_id: int
    object_id: int
    subscription_id: str
    client_state: str

    @property
    def key(self):
        """The key of the room's sync jobs."""
        return str(self.link_id)

    def notification(self):
        resource = f"Users/{self.upn}/Events/{secrets.token_hex(8)}"
        return {
            "id": secrets.token_hex(6),
            "subscriptionId": self.subscription_id,
            "subscriptionExpirationDateTime": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
            "clientState": self.client_state,
            "changeType": "updated",
            "resource": resource,
            "tenantId": TENANT,
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource, "id": resource[-16:]},
        }


@dataclass(frozen=True)
class LeaseRow:
    holder: str | None
    acquired_at: datetime | None
    expires_at: datetime | None
    # Whether the row names a holder whose lease has not expired, by the database clock.
    live: bool


class Cluster:
    """The two instances, the database they share and the stand-in they call, as the tests see them."""

    def __init__(self, instances, portal, engine, stand_in, probe_file, integration_id):
        self.instances = instances
        self.portal = portal
        self.engine = engine
        self.stand_in = stand_in
        self.probe_file = probe_file
        self.integration_id = integration_id

    # -- processes ------------------------------------------------------------------------

    def ensure_running(self):
        """Start again whatever an earlier test killed, and wait until every instance is up."""
        for instance in self.instances:
            if not instance.alive:
                instance.start()
        for instance in self.instances:
            try:
                instance.wait_ready()
            except AssertionError:
                # The free port found for it was taken by another process before gunicorn bound it.
                if instance.alive or "Connection in use" not in instance.stderr():
                    raise
                instance.start()
                instance.wait_ready()

    def instance_of(self, holder):
        """The instance one of whose workers is named by a holder id or `claimed_by`; None if neither."""
        pid = pid_of(holder)
        owners = [instance for instance in self.instances if pid in instance.worker_pids()]
        assert len(owners) <= 1, f"process {pid} is a worker of {owners}"
        return owners[0] if owners else None

    def other(self, instance):
        (other,) = [candidate for candidate in self.instances if candidate is not instance]
        return other

    def tails(self):
        return "\n".join(instance.tail() for instance in self.instances)

    # -- the shared database --------------------------------------------------------------

    def lease(self):
        with self.engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT holder, acquired_at, expires_at,"
                    " holder IS NOT NULL AND expires_at > (clock_timestamp() AT TIME ZONE 'UTC') AS live"
                    " FROM scheduler_leases WHERE name = 'scheduler'"
                )
            ).one_or_none()
        return LeaseRow(*row) if row else None

    def lease_holder(self):
        """The holder of the live scheduler lease, or None."""
        row = self.lease()
        return row.holder if row and row.live else None

    def sync_jobs(self, rooms):
        """(key, state, claimed_by, attempts, last_error, due) of the rooms' sync jobs, as the database has them now."""
        with self.engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT key, state, claimed_by, attempts, last_error,"
                    " state = 'queued' AND run_at <= (clock_timestamp() AT TIME ZONE 'UTC') AS due"
                    " FROM jobs WHERE kind = :kind AND key = ANY(:keys) ORDER BY id"
                ),
                {"kind": SYNC_LINK, "keys": [room.key for room in rooms]},
            ).all()

    def wait_until_synced(self, rooms, timeout):
        """Until none of the rooms has a queued or running sync job; returns the parked (failed) ones."""

        def settled():
            return all(job.state == "failed" for job in self.sync_jobs(rooms))

        try:
            eventually(settled, timeout=timeout, interval=0.1)
        except AssertionError:
            unfinished = [job for job in self.sync_jobs(rooms) if job.state != "failed"]
            raise AssertionError(
                f"the rooms' syncs did not finish within {timeout} s: {unfinished}\n{self.tails()}"
            ) from None
        return [job for job in self.sync_jobs(rooms) if job.state == "failed"]

    def bookings(self, room):
        """(subject, start, end, Outlook event id) of the bookings of the room's object."""
        with self.portal.app_context():
            rows = db.session.scalars(
                db.select(Booking).where(Booking.object_id == room.object_id).order_by(Booking.start_at, Booking.id)
            ).all()
            found = [
                (b.remark.split("\n")[0], b.start_at, b.end_at, (b.extra or {}).get("outlook_event_id")) for b in rows
            ]
            db.session.remove()
            return found

    # -- the stand-in ---------------------------------------------------------------------

    def add_rooms(self, prefix, count, latency=None):
        """*count* room mailboxes in the stand-in, each linked and subscribed in the portal.

        The links carry a subscription that lasts for days, so the scheduler neither creates
        nor renews one, and no delta state, so each room's first sync is a full round.
        *latency* delays every Graph request for these mailboxes by that many seconds.
        """
        upns = [f"{prefix}-{number:02d}@{DOMAIN}" for number in range(1, count + 1)]
        for upn in upns:
            self.stand_in.control(f"tenants/{TENANT}/mailboxes", {"upn": upn, "display_name": upn, "kind": "room"})
            if latency:
                self.stand_in.control("latency", {"seconds": latency, "mailbox": upn})
        rooms = []
        with self.portal.app_context():
            integration = db.session.get(Integration, self.integration_id)
            for upn in upns:
                room = BookableObject(organisation_id=integration.organisation_id, name=f"Object of {upn}")
                db.session.add(room)
                db.session.flush()
                link = CalendarLink(
                    integration_id=integration.id,
                    mailbox=upn,
                    object_id=room.id,
                    subscription_id=f"subscription-{secrets.token_hex(8)}",
                    subscription_client_state=secrets.token_urlsafe(16),
                    subscription_expires_at=datetime.now(UTC) + timedelta(days=3),
                )
                db.session.add(link)
                db.session.flush()
                rooms.append(Room(upn, link.id, room.id, link.subscription_id, link.subscription_client_state))
            db.session.commit()
            db.session.remove()
        return rooms

    def book(self, room, subject, start, end):
        """An Outlook user books *room*; returns the event id in the room's calendar."""
        event_id, _ = self.stand_in.appointment(room.upn, subject, start, end)
        return event_id

    def delta_requests(self, room):
        """[(start, end)] in Unix time of the delta requests for the room's calendar, as the stand-in served them."""
        found = []
        for entry in self.stand_in.requests("calendarView/delta"):
            if f"/users/{room.upn}/" in entry["path"] and entry["method"] == "GET":
                end = datetime.fromisoformat(entry["at"]).timestamp()
                found.append((end - entry["seconds"], end))
        return sorted(found)

    def probe_runs(self, since):
        """[(time, pid)] of the launcher's periodic probe since *since* (Unix time), in order."""
        try:
            lines = self.probe_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        runs = [(float(at), int(pid)) for at, pid in (line.split() for line in lines if line.strip())]
        return sorted(run for run in runs if run[0] >= since)


class Sampler:
    """Reads the rooms' sync jobs from the database every few tens of milliseconds, on a thread."""

    def __init__(self, cluster, rooms, every=0.03):
        self.cluster = cluster
        self.rooms = rooms
        self.every = every
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-sampler", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self.cluster.sync_jobs(self.rooms))
            self._stop.wait(self.every)
