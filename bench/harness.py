"""What every benchmark needs: the stand-in in a process of its own, an empty database of
each kind, the portal configured against both, and a fleet of rooms on both sides.

The stand-in never shares a process with the portal side being measured: its own work
(building delta rounds, serving pages) must not count against the portal, nor its memory.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from app import create_app
from app.extensions import db
from app.models import BookableObject, BookingStatus, CalendarLink, Integration
from app.models.integration import AUTH_APPLICATION, CONNECTION_CONNECTED
from app.orgs.provisioning import create_organisation
from config import Config, normalise_database_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable

TENANT = "7c1d5e2a-4b3f-4e6d-9a8b-1c2d3e4f5a6b"
DOMAIN = "bench.example"
CLIENT_ID = "3e9b1f2c-5d4a-4c7e-8f6b-2a1d0c9e8b7a"
CLIENT_SECRET = "bench-client-secret"
ORGANIZER = f"organizer@{DOMAIN}"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def at_lower_priority(niceness):
    """A `preexec_fn` that runs the child in a session of its own at the given niceness.

    Linux schedules each session as one group (autogroup) and niceness only counts inside
    a group, so the group's own niceness is set too, where the kernel offers it.
    """

    def lower():
        os.setsid()
        try:
            with open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(niceness))
        except OSError:
            pass
        os.nice(niceness)

    return lower


def room_upn(number):
    return f"room-{number:04d}@{DOMAIN}"


# -- the stand-in ----------------------------------------------------------------------


class StandIn:
    """`python -m tools.fakegraph` in a subprocess, driven through its control API."""

    NICENESS = 10

    def __init__(self, notification_delay=None):
        self.notification_delay = notification_delay
        self.process = None
        self.base_url = None
        self.session = requests.Session()

    def start(self):
        command = [PYTHON, "-m", "tools.fakegraph", "--port", "0", "--quiet"]
        if self.notification_delay is not None:
            command += ["--notification-delay", str(self.notification_delay)]
        # Microsoft's servers never take the portal's CPU; on one machine the stand-in
        # yields to the portal instead, or its work would count against the portal's.
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=at_lower_priority(self.NICENESS)
        )
        first_line = self.process.stdout.readline()
        if " on http" not in first_line:
            self.stop()
            raise RuntimeError(f"the stand-in did not start: {first_line!r}")
        self.base_url = first_line.rsplit(" ", 1)[-1].strip()
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def graph_url(self):
        return f"{self.base_url}/v1.0"

    @property
    def login_url(self):
        return f"{self.base_url}/login"

    def control(self, path, body=None, method="POST"):
        response = self.session.request(method, f"{self.base_url}/_control/{path}", json=body, timeout=600)
        if response.status_code >= 400:
            raise RuntimeError(f"stand-in control {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def set_latency(self, seconds):
        self.control("latency", {"seconds": seconds})

    def requests_made(self, path=None):
        """The stand-in's log of Graph and sign-in requests (the last few thousand)."""
        query = {"path": path} if path else None
        return self.session.get(f"{self.base_url}/_control/requests", params=query, timeout=60).json()["value"]

    def forget_requests(self):
        self.control("requests", method="DELETE")

    def add_tenant_with_rooms(self, rooms, *, webhook_base=None):
        """One tenant, the portal's app registration (application permissions) and `rooms` room mailboxes."""
        self.control("tenants", {"id": TENANT, "domain": DOMAIN, "name": "Bench"})
        registration = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "name": "i-Reserve"}
        self.control(f"tenants/{TENANT}/apps", registration)
        self.control(f"tenants/{TENANT}/mailboxes", {"upn": ORGANIZER, "display_name": "Organizer"})
        upns = [room_upn(number) for number in range(1, rooms + 1)]
        for number, upn in enumerate(upns, start=1):
            self.control(f"tenants/{TENANT}/mailboxes", {"upn": upn, "display_name": f"Room {number}", "kind": "room"})
        return upns

    def fill(self, upn, count, minutes=30, from_day=-30):
        return self.control(f"mailboxes/{upn}/fill", {"count": count, "minutes": minutes, "from_day": from_day})


# -- databases -------------------------------------------------------------------------


def postgres_url():
    """The PostgreSQL server to measure on (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else local), or None."""
    url = normalise_database_url(
        os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL
    )
    try:
        engine = create_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception:
        return None
    return url


@contextlib.contextmanager
def database(kind, workdir):
    """The URL of an empty database of `kind` ("sqlite" or "postgresql"), removed afterwards."""
    if kind == "sqlite":
        path = os.path.join(workdir, f"bench-{time.monotonic_ns()}.db")
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)
        return
    from tests.pg import temporary_schema

    base = postgres_url()
    if base is None:
        raise RuntimeError("PostgreSQL is not reachable")
    with temporary_schema(base, prefix="bench") as url:
        yield url


# -- the portal ------------------------------------------------------------------------


@dataclass
class PortalSettings:
    """The settings a benchmark's portal runs with, as config values and as environment for subprocesses."""

    database_url: str
    stand_in: StandIn
    instance_path: str
    extra: dict = field(default_factory=dict)
    encryption_key: str = field(default_factory=lambda: Fernet.generate_key().decode())

    def values(self):
        return {
            "SQLALCHEMY_DATABASE_URI": normalise_database_url(self.database_url),
            "SECRET_KEY": "bench-secret-key",
            "ENCRYPTION_KEY": self.encryption_key,
            "GRAPH_BASE_URL": self.stand_in.graph_url,
            "MS_LOGIN_BASE_URL": self.stand_in.login_url,
            "LOG_LEVEL": "WARNING",
            **self.extra,
        }

    def environment(self):
        """The same settings for a portal process of its own (gunicorn, a measuring worker)."""
        names = {"SQLALCHEMY_DATABASE_URI": "DATABASE_URL"}
        env = dict(os.environ)
        for name, value in self.values().items():
            env[names.get(name, name)] = str(value)
        env["INSTANCE_PATH"] = self.instance_path
        # The stand-in speaks plain http on 127.0.0.1.
        env["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        env["PYTHONPATH"] = ROOT
        return env

    def as_json(self):
        return json.dumps(
            {
                "database_url": self.database_url,
                "base_url": self.stand_in.base_url,
                "instance_path": self.instance_path,
                "extra": self.extra,
                "encryption_key": self.encryption_key,
            }
        )

    @classmethod
    def from_json(cls, text_value):
        data = json.loads(text_value)
        stand_in = StandIn()
        stand_in.base_url = data["base_url"]
        return cls(data["database_url"], stand_in, data["instance_path"], data["extra"], data["encryption_key"])


def make_portal(settings, *, create_schema=False):
    """The portal's Flask app in this process; `create_schema` creates its tables."""
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    config = type("BenchConfig", (Config,), settings.values())
    app = create_app(config, instance_path=settings.instance_path)
    if create_schema:
        with app.app_context():
            db.create_all()
            db.session.remove()
    return app


@dataclass
class Fleet:
    integration_id: int
    link_ids: list
    upns: list


def seed_fleet(app, upns):
    """An organisation with one application-mode integration connected to the stand-in's
    tenant, and one bookable object with a calendar link per room."""
    with app.app_context():
        organisation = create_organisation("Bench Rooms")
        db.session.flush()
        statuses = {
            status.name: status.id
            for status in db.session.scalars(
                db.select(BookingStatus).where(BookingStatus.organisation_id == organisation.id)
            )
        }
        integration = Integration(
            organisation_id=organisation.id,
            name="Rooms",
            auth_mode=AUTH_APPLICATION,
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            connection_state=CONNECTION_CONNECTED,
            cancel_status_id=statuses.get("Cancelled"),
            new_booking_status_id=statuses.get("Option"),
        )
        db.session.add(integration)
        links = []
        for number, upn in enumerate(upns, start=1):
            room = BookableObject(organisation_id=organisation.id, name=f"Room {number}", capacity=8)
            link = CalendarLink(integration=integration, mailbox=upn, object=room)
            db.session.add_all([room, link])
            links.append(link)
        db.session.commit()
        fleet = Fleet(integration.id, [link.id for link in links], list(upns))
        db.session.remove()
        return fleet


@contextlib.contextmanager
def workdir():
    with tempfile.TemporaryDirectory(prefix="ireserve-bench-") as path:
        yield path


# -- results ---------------------------------------------------------------------------


@dataclass
class Row:
    """One measured value, with its target when it has one."""

    benchmark: str
    database: str
    measure: str
    value: float | int | str
    unit: str = ""
    target: str = ""
    met: bool | None = None


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def wait_for(check, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)
