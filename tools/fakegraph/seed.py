"""Seeds: a tenant with apps, users and rooms, and their appointments, loaded through the control API.

A seed is JSON (or the built-in :data:`DEMO`) of this shape::

    {"settings": {"display_zone": "Europe/Amsterdam"},
     "tenants": [{"id": "...", "domain": "...", "name": "...",
                  "apps": [{"client_id": "...", "client_secret": "...", "permissions": ["Calendars.Read"]}],
                  "mailboxes": [{"upn": "...", "display_name": "...", "kind": "room", "capacity": 8}],
                  "room_lists": [{"email": "...", "display_name": "...", "rooms": ["room@..."]}]}],
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
#: Rooms of the tenant the demo's portal has not mapped yet: *Find rooms in Microsoft 365* finds them.
DEMO_UNMAPPED_ROOMS = {
    f"library@{DEMO_DOMAIN}": "Library",
    f"quiet-room@{DEMO_DOMAIN}": "Quiet room",
    f"auditorium@{DEMO_DOMAIN}": "Auditorium",
}
DEMO_ZONE = "Europe/Amsterdam"
#: Where Places puts each room: (building, floor label, floor number, capacity).
DEMO_PLACES = {
    f"board-room@{DEMO_DOMAIN}": ("Head office", "1st floor", 1, 12),
    f"studio@{DEMO_DOMAIN}": ("Head office", "Ground floor", 0, 4),
    f"training-room@{DEMO_DOMAIN}": ("Head office", "2nd floor", 2, 20),
    f"library@{DEMO_DOMAIN}": ("Head office", "2nd floor", 2, 6),
    f"archive@{DEMO_DOMAIN}": ("Warehouse", "Basement", -1, 2),
    f"quiet-room@{DEMO_DOMAIN}": ("Warehouse", "Ground floor", 0, 1),
    f"auditorium@{DEMO_DOMAIN}": ("Warehouse", "1st floor", 1, 150),
}

BOARD_ROOM, STUDIO, TRAINING_ROOM = DEMO_ROOMS


def _room(upn, display_name, **flags):
    building, floor_label, floor_number, capacity = DEMO_PLACES[upn]
    return {
        "upn": upn,
        "display_name": display_name,
        "kind": "room",
        "building": building,
        "floor_label": floor_label,
        "floor_number": floor_number,
        "capacity": capacity,
        **flags,
    }


DEMO = {
    # The consent page offers Megan first: she is the account the demo tells you to use.
    "settings": {"display_zone": DEMO_ZONE, "consent_account": DEMO_USER},
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
                    "permissions": ["Calendars.Read", "Place.Read.All"],
                }
            ],
            "mailboxes": [
                {"upn": DEMO_USER, "display_name": "Megan Bowen", "kind": "user"},
                {"upn": DEMO_ORGANIZER, "display_name": "Adele Vance", "kind": "user"},
                *(_room(upn, name) for upn, name in DEMO_ROOMS.items()),
                *(_room(upn, name) for upn, name in DEMO_UNMAPPED_ROOMS.items()),
                _room(DEMO_DENIED_ROOM, "Archive", app_only_denied=True),
            ],
            "room_lists": [
                {
                    "email": f"head-office@{DEMO_DOMAIN}",
                    "display_name": "Head office",
                    "rooms": [upn for upn, place in DEMO_PLACES.items() if place[0] == "Head office"],
                },
                {
                    "email": f"warehouse@{DEMO_DOMAIN}",
                    "display_name": "Warehouse",
                    "rooms": [upn for upn, place in DEMO_PLACES.items() if place[0] == "Warehouse"],
                },
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
        for room_list in tenant.get("room_lists", []):
            call(f"/_control/tenants/{tenant['id']}/roomlists", room_list)
    return [call("/_control/appointments", appointment) for appointment in seed.get("appointments", [])]


def read(reference):
    """The seed named *reference*: ``demo`` for :data:`DEMO`, else a JSON file's path."""
    if reference == "demo":
        return DEMO
    with open(reference, encoding="utf-8") as handle:
        return json.load(handle)
