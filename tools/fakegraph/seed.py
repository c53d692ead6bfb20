"""Seeds: a tenant with apps, users and rooms, and their appointments, loaded through the control API.

A seed is JSON (or the built-in :data:`DEMO`) of this shape::

    {"settings": {"display_zone": "Europe/Amsterdam"},
     "tenants": [{"id": "...", "domain": "...", "name": "...",
                  "apps": [{"client_id": "...", "client_secret": "...", "permissions": ["Calendars.Read"]}],
                  "mailboxes": [{"upn": "...", "display_name": "...", "kind": "room"}]}],
     "appointments": [{"organizer": "...", "attendees": ["room@..."], "subject": "...",
                       "day": 1, "from": "09:00", "to": "10:00"}]}

Appointments take what `POST /_control/appointments` takes; `day` counts from today, so a
seed stays current whenever it is loaded.
"""

import json

DEMO_TENANT_ID = "5b7e1c2a-3d4f-4a6b-8c9d-0e1f2a3b4c5d"
DEMO_DOMAIN = "fabrikam.example"
DEMO_CLIENT_ID = "0f6d2a4c-8b1e-4f3a-9c5d-7e2b1a0c9d8e"
DEMO_CLIENT_SECRET = "demo-client-secret-Xq7~rooms"
DEMO_USER = f"megan@{DEMO_DOMAIN}"
DEMO_ORGANIZER = f"adele@{DEMO_DOMAIN}"
DEMO_ROOMS = {
    f"board-room@{DEMO_DOMAIN}": "Board room",
    f"studio@{DEMO_DOMAIN}": "Studio",
    f"training-room@{DEMO_DOMAIN}": "Training room",
}
DEMO_DENIED_ROOM = f"archive@{DEMO_DOMAIN}"
DEMO_ZONE = "Europe/Amsterdam"

BOARD_ROOM, STUDIO, TRAINING_ROOM = DEMO_ROOMS

DEMO = {
    "settings": {"display_zone": DEMO_ZONE},
    "tenants": [
        {
            "id": DEMO_TENANT_ID,
            "domain": DEMO_DOMAIN,
            "name": "Fabrikam",
            "apps": [
                {
                    "client_id": DEMO_CLIENT_ID,
                    "client_secret": DEMO_CLIENT_SECRET,
                    "name": "i-Reserve Outlook integration",
                    "permissions": ["Calendars.Read"],
                }
            ],
            "mailboxes": [
                {"upn": DEMO_USER, "display_name": "Megan Bowen", "kind": "user"},
                {"upn": DEMO_ORGANIZER, "display_name": "Adele Vance", "kind": "user"},
                *({"upn": upn, "display_name": name, "kind": "room"} for upn, name in DEMO_ROOMS.items()),
                {"upn": DEMO_DENIED_ROOM, "display_name": "Archive", "kind": "room", "app_only_denied": True},
            ],
        }
    ],
    "appointments": [
        {
            "organizer": DEMO_ORGANIZER,
            "attendees": [BOARD_ROOM],
            "subject": "Weekly planning",
            "body": "Plans for the week, standing.",
            "day": 0,
            "from": "09:00",
            "to": "09:30",
            "recurrence": {"type": "weekly", "days_of_week": ["monday", "wednesday", "friday"], "count": 12},
        },
        {
            "organizer": DEMO_ORGANIZER,
            "attendees": [BOARD_ROOM],
            "subject": "Quarterly review",
            "body": "Figures, forecasts and coffee.",
            "day": 2,
            "from": "14:00",
            "to": "16:00",
        },
        {
            "organizer": DEMO_ORGANIZER,
            "attendees": [STUDIO],
            "subject": "Podcast recording",
            "day": 1,
            "from": "10:00",
            "to": "12:00",
        },
        {
            "organizer": DEMO_ORGANIZER,
            "attendees": [STUDIO],
            "subject": "Studio maintenance",
            "day": 5,
            "is_all_day": True,
        },
        {
            "organizer": DEMO_ORGANIZER,
            "attendees": [TRAINING_ROOM],
            "subject": "Onboarding new staff",
            "day": 3,
            "from": "09:00",
            "to": "12:00",
        },
        {
            "organizer": DEMO_USER,
            "subject": "Customer visit",
            "body": "At the front desk.",
            "day": 1,
            "from": "15:00",
            "to": "16:00",
        },
        {"organizer": DEMO_USER, "subject": "Focus time", "day": 2, "from": "08:30", "to": "10:00"},
    ],
}


def load(app, seed):
    """Load *seed* (a dict) into the stand-in *app* through its control API."""
    client = app.test_client()

    def call(path, body):
        response = client.post(path, json=body)
        if response.status_code >= 400:
            raise ValueError(f"seed step {path} failed: {response.get_json()}")
        return response.get_json()

    if seed.get("settings"):
        call("/_control/settings", seed["settings"])
    for tenant in seed.get("tenants", []):
        call("/_control/tenants", {key: tenant[key] for key in ("id", "domain", "name") if key in tenant})
        for app_registration in tenant.get("apps", []):
            call(f"/_control/tenants/{tenant['id']}/apps", app_registration)
        for mailbox in tenant.get("mailboxes", []):
            call(f"/_control/tenants/{tenant['id']}/mailboxes", mailbox)
    return [call("/_control/appointments", appointment) for appointment in seed.get("appointments", [])]


def read(reference):
    """The seed named *reference*: ``demo`` for :data:`DEMO`, else a JSON file's path."""
    if reference == "demo":
        return DEMO
    with open(reference, encoding="utf-8") as handle:
        return json.load(handle)
