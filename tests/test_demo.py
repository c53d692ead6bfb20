"""`make demo` from the outside: it comes up seeded with clashes and a failing room, and Ctrl-C ends it calmly."""

import sqlite3

import requests

from tools.demo_process import running_demo
from tools.fakegraph import seed


def test_the_demo_shows_clashes_a_failing_room_and_places_then_stops_on_ctrl_c(tmp_path):
    with running_demo(tmp_path / "instance") as demo:
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

        token = requests.post(
            f"{demo.graph}/login/{seed.DEMO_TENANT_ID}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": seed.DEMO_CLIENT_ID,
                "client_secret": seed.DEMO_CLIENT_SECRET,
                "scope": "https://graph.microsoft.com/.default",
            },
            timeout=5,
        ).json()["access_token"]
        room_lists = requests.get(
            f"{demo.graph}/v1.0/places/microsoft.graph.roomlist",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).json()["value"]
        assert [room_list["displayName"] for room_list in room_lists] == ["Head office", "Warehouse"]

        rest = demo.interrupt()
        assert demo.process.returncode == 0
    assert rest.rstrip().endswith("Demo stopped.")
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
