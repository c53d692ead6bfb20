"""`make demo`: the portal and the Microsoft 365 stand-in side by side, seeded, in one command.

1. starts the stand-in (`python -m tools.fakegraph --seed demo`): tenant Fabrikam, the
   users Megan and Adele, rooms in two room lists with appointments (a weekly series among
   them), and Places answering *Find rooms in Microsoft 365*;
2. builds a fresh SQLite database `demo.db` in the instance folder (`INSTANCE_PATH`, else
   `instance/`) with `flask db upgrade` and seeds it: an organisation, a support account, a
   delegated integration for Megan's calendar and an application integration for four
   rooms, tested and activated. One room (Archive) is shut out by the tenant's application
   access policy, so it fails as a misconfigured room would; two bookings made in i-Reserve
   beforehand clash with Outlook appointments, so the first sync refuses those; the health
   chart gets six invented days of hourly figures before today;
3. starts the portal with gunicorn, pointed at the stand-in, and waits for the first sync.

Ctrl-C stops both and ends with "Demo stopped.". Every run starts afresh: the stand-in
keeps its world in memory only.
Plain http needs OAUTHLIB_INSECURE_TRANSPORT=1 in the portal's environment (requests-oauthlib
refuses http otherwise); the demo sets it, never do so in production.
"""

import os
import secrets
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

from tools.fakegraph import seed

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("INSTANCE_PATH") or ROOT / "instance").resolve()
DATABASE = INSTANCE / "demo.db"
BIN = Path(sys.executable).parent
SUPPORT_EMAIL = "support@demo.example"
FAILING_ROOM = seed.DEMO_DENIED_ROOM
#: Bookings made in i-Reserve before the first sync, each clashing with a seeded appointment:
#: (room, title, day from today, local start, local end).
CLASHING_BOOKINGS = [
    (seed.STUDIO, "Equipment check", 1, "11:00", "12:30"),
    (seed.BOARD_ROOM, "Board dinner set-up", 2, "15:30", "17:00"),
]
STARTUP_SECONDS = 30
FIRST_SYNC_SECONDS = 60


def main():
    portal_address = os.environ.get("BIND", "127.0.0.1:8000")
    graph_port = int(os.environ.get("DEMO_GRAPH_PORT", "8025"))
    portal_host, portal_port = portal_address.rsplit(":", 1)
    for host, port in ((portal_host, int(portal_port)), ("127.0.0.1", graph_port)):
        if not _port_free(host, port):
            sys.exit(f"Port {host}:{port} is in use; set BIND (portal) or DEMO_GRAPH_PORT (stand-in) to another.")
    graph_base = f"http://127.0.0.1:{graph_port}"
    portal_base = f"http://{'127.0.0.1' if portal_host in ('0.0.0.0', '') else portal_host}:{portal_port}"
    environment = _portal_environment(portal_address, portal_base, graph_base)
    INSTANCE.mkdir(parents=True, exist_ok=True)
    # Ctrl-C reaches the whole foreground process group; the children sit in their own
    # sessions, so only the demo hears it and stops them in order, quietly.
    signal.signal(signal.SIGTERM, _interrupt)

    children = []
    try:
        graph_log = INSTANCE / "demo-graph.log"
        children.append(
            _start(
                [sys.executable, "-m", "tools.fakegraph", "--port", str(graph_port), "--seed", "demo", "--quiet"],
                os.environ,
                graph_log,
            )
        )
        _wait_for(f"{graph_base}/_control/health", children, graph_log)

        _fresh_database(environment)
        password = _seed_portal(environment)

        portal_log = INSTANCE / "demo-portal.log"
        children.append(
            _start(
                [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app", "--access-logfile", str(portal_log)],
                environment,
                portal_log,
            )
        )
        _wait_for(f"{portal_base}/healthz", children, portal_log)
        bookings = _wait_for_first_sync(children, portal_log)

        print(
            f"""
i-Reserve demo is running (Ctrl-C stops it).

  Portal         {portal_base}
                 sign in as {SUPPORT_EMAIL} / {password}
  Microsoft 365  {graph_base}/_control/   (the stand-in: change appointments here)

The application integration "Meeting rooms" synced its rooms: {bookings} bookings.
Move, cancel or delete one of their appointments on the stand-in's page and watch the booking
follow within a second (Organisations > Fabrikam > Bookings).
Its status page shows two appointments not booked from Outlook (they clash with bookings
made in i-Reserve) and the Archive room failing (the tenant's access policy excludes it);
Rooms > Find rooms in Microsoft 365 lists the tenant's rooms by room list.
For the delegated integration "Megan's calendar", press Connect with Microsoft and accept as
Megan Bowen (preselected) on the stand-in's consent page; her appointments follow, and
bookings of her object in a Confirmed status appear in her calendar.

Logs: {_shown(graph_log)}, {_shown(portal_log)}
""",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process of the demo stopped; see the logs.", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nStopping the demo…", flush=True)
    finally:
        _stop(children)
    print("Demo stopped.", flush=True)


def _shown(path):
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _portal_environment(portal_address, portal_base, graph_base):
    environment = dict(os.environ)
    environment.update(
        FLASK_APP="wsgi",
        DATABASE_URL=f"sqlite:///{DATABASE}",
        INSTANCE_PATH=str(INSTANCE),
        GRAPH_BASE_URL=f"{graph_base}/v1.0",
        MS_LOGIN_BASE_URL=f"{graph_base}/login",
        PUBLIC_BASE_URL=portal_base,
        BIND=portal_address,
        # requests-oauthlib refuses the stand-in's plain http without it. Local demo only.
        OAUTHLIB_INSECURE_TRANSPORT="1",
        WEB_CONCURRENCY="1",
        JOB_POLL_SECONDS="0.5",
    )
    return environment


def _fresh_database(environment):
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    upgrade = subprocess.run(
        [str(BIN / "flask"), "db", "upgrade"],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        start_new_session=True,
    )
    if upgrade.returncode:
        raise SystemExit(f"flask db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")


def _seed_portal(environment):
    """Seed through the product's own code, in a child process that sees the demo's environment."""
    # Letters and digits only: easy to copy from a terminal.
    password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(14))
    seeded = subprocess.run(
        [sys.executable, "-c", "from tools.demo import seed_portal; import sys; seed_portal(sys.argv[1])", password],
        env={**environment, "LOG_LEVEL": "WARNING"},
        cwd=ROOT,
        start_new_session=True,
    )
    if seeded.returncode:
        raise SystemExit("Seeding the portal failed; the error is above.")
    return password


def seed_portal(password):
    """The portal's side of the demo: organisation, support account, both integrations (runs in a child)."""
    from app import create_app
    from app.connection.check import run_connection_test_job
    from app.extensions import db
    from app.models import BookableObject, Booking, BookingStatus, CalendarLink, Integration, User
    from app.models.integration import AUTH_APPLICATION, AUTH_DELEGATED
    from app.models.organisation import ROLE_SUPPORT
    from app.orgs.provisioning import create_organisation
    from app.subscriptions.jobs import activate_link

    app = create_app(instance_path=str(INSTANCE))
    with app.app_context():
        organisation = create_organisation("Fabrikam", seed.DEMO_ZONE)
        support = User(email=SUPPORT_EMAIL, role=ROLE_SUPPORT)
        support.set_password(password)
        db.session.add(support)
        statuses = {
            s.name: s
            for s in db.session.scalars(
                db.select(BookingStatus).where(BookingStatus.organisation_id == organisation.id)
            )
        }
        objects = {}
        rooms_to_map = {**seed.DEMO_ROOMS, FAILING_ROOM: "Archive"}
        for name in [*rooms_to_map.values(), "Megan's desk"]:
            objects[name] = BookableObject(organisation_id=organisation.id, name=name, capacity=8)
            db.session.add(objects[name])
        db.session.flush()
        common = dict(
            organisation_id=organisation.id,
            tenant_id=seed.DEMO_TENANT_ID,
            client_id=seed.DEMO_CLIENT_ID,
            client_secret=seed.DEMO_CLIENT_SECRET,
            cancel_status=statuses["Cancelled"],
            new_booking_status=statuses["Confirmed"],
        )
        db.session.add(
            Integration(
                name="Megan's calendar",
                auth_mode=AUTH_DELEGATED,
                object_id=objects["Megan's desk"].id,
                create_calendar_entry_statuses=[statuses["Confirmed"]],
                delete_on_statuses=[statuses["Cancelled"]],
                **common,
            )
        )
        rooms = Integration(name="Meeting rooms", auth_mode=AUTH_APPLICATION, **common)
        db.session.add(rooms)
        db.session.flush()
        links = [
            CalendarLink(integration_id=rooms.id, mailbox=upn, object_id=objects[name].id)
            for upn, name in rooms_to_map.items()
        ]
        db.session.add_all(links)
        zone = ZoneInfo(seed.DEMO_ZONE)
        for upn, title, day, start, end in CLASHING_BOOKINGS:
            date = datetime.now(zone).date() + timedelta(days=day)
            db.session.add(
                Booking(
                    organisation_id=organisation.id,
                    object_id=objects[rooms_to_map[upn]].id,
                    status=statuses["Confirmed"],
                    start_at=_local(date, start, zone),
                    end_at=_local(date, end, zone),
                    remark=title,
                )
            )
        db.session.commit()
        # What the job queued by Test connection does: a token from the stand-in proves the
        # settings, and the report is stored for the portal's Test connection page.
        report = run_connection_test_job(str(rooms.id), {})
        if report.token_problem or report.count("ok") != len(links) - 1:
            raise SystemExit(f"The demo's connection test failed: {report.token_problem or report.rooms}")
        for link in links:
            activate_link(link.id)
        _invent_last_week(rooms.id, zone)
        db.session.commit()


def _invent_last_week(integration_id, zone):
    """Hourly figures for the six days before today, so the health chart has a week to show.

    Invented, not measured: office hours bring notifications and a sync each, some bookings,
    and the Archive room's failures; nights are quiet.
    """
    from app.extensions import db
    from app.models import SyncHourly

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for hours_ago in range(24, 24 * 7):
        hour = now - timedelta(hours=hours_ago)
        local = hour.astimezone(zone)
        busy = local.weekday() < 5 and 8 <= local.hour < 18
        db.session.add(
            SyncHourly(
                integration_id=integration_id,
                hour=hour,
                syncs_ok=3 + (4 if busy else 0),
                syncs_failed=1 if local.hour % 6 == 0 else 0,
                notifications=(5 + hours_ago % 4) if busy else 0,
                bookings_created=(hours_ago % 3) if busy else 0,
                bookings_updated=1 if busy and hours_ago % 4 == 0 else 0,
                bookings_cancelled=1 if busy and hours_ago % 9 == 0 else 0,
            )
        )


def _local(date, clock_time, zone):
    hours, minutes = map(int, clock_time.split(":"))
    return datetime.combine(date, dt_time(hours, minutes), zone).astimezone(UTC)


def _wait_for_first_sync(children, log):
    """Wait until the rooms are synced and subscribed (the failing one tried); return the bookings made."""
    deadline = time.monotonic() + FIRST_SYNC_SECONDS
    while time.monotonic() < deadline:
        _check_alive(children, log)
        with sqlite3.connect(DATABASE, timeout=10) as database:
            waiting = database.execute(
                "SELECT count(*) FROM calendar_links WHERE mailbox != 'me' AND ("
                " (mailbox != ? AND (last_sync_status != 'ok' OR subscription_id IS NULL))"
                " OR (mailbox = ? AND last_sync_status = 'never'))",
                (FAILING_ROOM, FAILING_ROOM),
            ).fetchone()[0]
            if not waiting:
                return database.execute("SELECT count(*) FROM bookings").fetchone()[0]
        time.sleep(0.5)
    raise SystemExit(f"The first sync did not finish within {FIRST_SYNC_SECONDS} s; see {log}.")


def _start(command, environment, log_path):
    log = open(log_path, "w")  # noqa: SIM115 (kept open for the child's lifetime)
    return subprocess.Popen(
        command, env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_for(url, children, log):
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        _check_alive(children, log)
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {STARTUP_SECONDS} s; see {log}.")


def _check_alive(children, log):
    for child in children:
        if child.poll() is not None:
            raise SystemExit(f"{' '.join(child.args[:3])} stopped (exit {child.returncode}); see {log}.")


def _stop(children):
    # A second Ctrl-C must not cut the shutdown short and leave a child running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=35)
        except subprocess.TimeoutExpired:
            child.kill()


def _port_free(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    main()
