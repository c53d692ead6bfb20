"""`make demo` from the outside: it comes up seeded with clashes and a failing room, and Ctrl-C ends it calmly."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

from tools.fakegraph import seed

ROOT = Path(__file__).resolve().parent.parent
READY = "i-Reserve demo is running"
START_SECONDS = 120


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_demo_shows_clashes_a_failing_room_and_places_then_stops_on_ctrl_c(tmp_path):
    portal_port, graph_port = free_port(), free_port()
    environment = {
        **os.environ,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "BIND": f"127.0.0.1:{portal_port}",
        "DEMO_GRAPH_PORT": str(graph_port),
    }
    # Its own process group, as a terminal's foreground job is: Ctrl-C signals the whole group.
    demo = subprocess.Popen(
        [sys.executable, "-m", "tools.demo"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + START_SECONDS
        while not any(READY in line for line in lines):
            line = demo.stdout.readline()
            assert line or demo.poll() is None, "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)

        with sqlite3.connect(tmp_path / "instance" / "demo.db") as database:
            refusals = database.execute("SELECT count(*) FROM sync_log WHERE action = 'refuse'").fetchone()[0]
            conflicts = database.execute("SELECT subject FROM sync_conflicts ORDER BY subject").fetchall()
            failing = database.execute(
                "SELECT mailbox, last_sync_error FROM calendar_links WHERE last_sync_status = 'error'"
            ).fetchall()
        assert refusals == 2
        assert conflicts == [("Podcast recording",), ("Quarterly review",)]
        assert [mailbox for mailbox, _ in failing] == [seed.DEMO_DENIED_ROOM]
        assert "ErrorAccessDenied" in failing[0][1]

        graph = f"http://127.0.0.1:{graph_port}"
        token = requests.post(
            f"{graph}/login/{seed.DEMO_TENANT_ID}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": seed.DEMO_CLIENT_ID,
                "client_secret": seed.DEMO_CLIENT_SECRET,
                "scope": "https://graph.microsoft.com/.default",
            },
            timeout=5,
        ).json()["access_token"]
        room_lists = requests.get(
            f"{graph}/v1.0/places/microsoft.graph.roomlist", headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).json()["value"]
        assert [room_list["displayName"] for room_list in room_lists] == ["Head office", "Warehouse"]

        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0
    assert rest.rstrip().endswith("Demo stopped.")
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
