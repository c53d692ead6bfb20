"""`python -m tools.fakegraph` with a seed, the control page, and seeds from JSON files."""

import json
import subprocess
import sys
from pathlib import Path

import requests

from tools.fakegraph import World, seed, use_world

ROOT = Path(__file__).resolve().parents[2]


def test_the_module_serves_graph_and_login_from_one_port_with_the_demo_seed():
    server = subprocess.Popen(
        [sys.executable, "-m", "tools.fakegraph", "--port", "0", "--seed", "demo", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base = server.stdout.readline().split(" on ")[1].strip()
        assert server.stdout.readline().strip() == f"GRAPH_BASE_URL={base}/v1.0"
        assert server.stdout.readline().strip() == f"MS_LOGIN_BASE_URL={base}/login"
        appointments = requests.get(f"{base}/_control/appointments", timeout=5).json()["value"]
        assert len(appointments) == len(seed.DEMO["appointments"])
        token = requests.post(
            f"{base}/login/{seed.DEMO_TENANT_ID}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": seed.DEMO_CLIENT_ID,
                "client_secret": seed.DEMO_CLIENT_SECRET,
                "scope": "https://graph.microsoft.com/.default",
            },
            timeout=5,
        ).json()["access_token"]
        calendar = requests.get(
            f"{base}/v1.0/users/{seed.BOARD_ROOM}/calendar", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert calendar.status_code == 200
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


def test_the_control_page_lists_mailboxes_and_their_appointments(stand):
    stand.appointment(
        attendees=["room-1@contoso.example"], subject="Visible", day=1, **{"from": "09:00", "to": "10:00"}
    )
    page = stand.client.get("/_control/").get_data(as_text=True)
    assert "room-1@contoso.example" in page and "Visible" in page
    assert "Move" in page and "Cancel" in page


def test_the_control_page_forms_lead_back_to_the_page(stand):
    created = stand.appointment(
        attendees=["room-1@contoso.example"], subject="By form", day=1, **{"from": "09:00", "to": "10:00"}
    )
    answer = stand.client.post(f"/_control/appointments/{created['uid']}/cancel", data={"confirm": "1"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/_control/")
    refused = stand.client.post("/_control/appointments/nothing/cancel", data={"confirm": "1"})
    assert refused.status_code == 404 and "Not done" in refused.get_data(as_text=True)


def test_a_json_seed_loads_like_the_demo(stand_in_app, tmp_path):
    document = {
        "tenants": [
            {
                "id": "22222222-0000-0000-0000-000000000000",
                "domain": "tailspin.example",
                "apps": [{"client_id": "33333333-0000-0000-0000-000000000000", "client_secret": "s"}],
                "mailboxes": [{"upn": "hall@tailspin.example", "kind": "room"}],
            }
        ],
        "appointments": [
            {
                "organizer": "x@outside.example",
                "attendees": ["hall@tailspin.example"],
                "subject": "Gala",
                "day": 3,
                "from": "19:00",
                "to": "23:00",
            }
        ],
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(document))
    world = use_world(stand_in_app, World())
    try:
        (created,) = seed.load(stand_in_app, seed.read(str(path)))
        assert set(created["events"]) == {"hall@tailspin.example"}
        assert world.mailbox("hall@tailspin.example").calendar.items
    finally:
        world.notifier.stop()
