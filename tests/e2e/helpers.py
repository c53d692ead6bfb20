"""Constants and helpers of the end-to-end tests: the stand-in's tenant, and the portal's side of it."""

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

from app.extensions import db
from app.jobs.handlers import SYNC_LINK
from app.models import BookableObject, Booking, CalendarLink, Integration, Job
from app.models.integration import AUTH_APPLICATION, AUTH_DELEGATED, CONNECTION_CONNECTED
from app.subscriptions.jobs import activate_link
from tests.live import eventually

TENANT = "7c1f0e2a-5b3d-4e6f-8a9b-0c1d2e3f4a5b"
DOMAIN = "contoso.example"
CLIENT_ID = "3e9a1b2c-4d5e-4f6a-8b7c-9d0e1f2a3b4c"
SECRET = "e2e-client-secret~"
USER = f"megan@{DOMAIN}"
ORGANIZER = f"adele@{DOMAIN}"
ROOMS = [f"room-{n}@{DOMAIN}" for n in (1, 2, 3)]
DENIED_ROOM = f"vault@{DOMAIN}"
#: Small pages make every sync a multi-page round.
PAGE_SIZE = 3


class M365:
    """The stand-in as the tests see it: its base URL, its world and its control API."""

    def __init__(self, base_url, world):
        self.base_url = base_url
        self.world = world

    def control(self, path, body=None, method="POST"):
        response = requests.request(method, f"{self.base_url}/_control/{path}", json=body or {}, timeout=10)
        assert response.status_code < 400, response.text
        return response.json()

    def appointment(self, room, subject, start, end, **fields):
        """An Outlook user books *room*; returns the room's event id and the meeting uid."""
        fields.setdefault("organizer", ORGANIZER)
        created = self.control(
            "appointments",
            {"attendees": [room], "subject": subject, "start": start, "end": end, "time_zone": "UTC", **fields},
        )
        return created["events"][room], created["uid"]

    def deliveries(self, outcome=None):
        found = self.control("notifications", method="GET")["deliveries"]
        return [d for d in found if outcome is None or d["outcome"] == outcome]

    def subscriptions(self, mailbox=None):
        found = self.control("subscriptions", method="GET")["value"]
        return [s for s in found if mailbox is None or s["mailbox"] == mailbox]

    def requests(self, path=None):
        return self.control(f"requests?path={path or ''}", method="GET")["value"]


# -- the portal's side -----------------------------------------------------------------


def add_objects(organisation_id, *names):
    objects = [BookableObject(organisation_id=organisation_id, name=name) for name in names]
    db.session.add_all(objects)
    db.session.commit()
    return [o.id for o in objects]


def add_integration(world, auth_mode, **settings):
    integration = Integration(
        organisation_id=world.a.org,
        name="Outlook",
        auth_mode=auth_mode,
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        cancel_status_id=world.a.statuses["Cancelled"],
        new_booking_status_id=world.a.statuses["Confirmed"],
        object_id=world.a.object if auth_mode == AUTH_DELEGATED else None,
        **settings,
    )
    db.session.add(integration)
    db.session.commit()
    return integration


def connect_rooms(world, rooms):
    """An application integration already connected, with a link per room on its own object.

    What Test connection and the room table leave behind; activating the links queues
    their subscriptions and first syncs. Returns {room: link id}.
    """
    integration = add_integration(world, AUTH_APPLICATION, connection_state=CONNECTION_CONNECTED)
    object_ids = add_objects(world.a.org, *(f"Object of {room}" for room in rooms))
    links = {}
    for room, object_id in zip(rooms, object_ids, strict=True):
        link = CalendarLink(integration_id=integration.id, mailbox=room, object_id=object_id)
        db.session.add(link)
        db.session.flush()
        activate_link(link.id)
        links[room] = link.id
    db.session.commit()
    return links


def link_of(link_id):
    db.session.expire_all()
    return db.session.get(CalendarLink, link_id)


def bookings_of(link_id):
    """(subject line of the remark, start, end, status, event id) of the link's object's bookings."""
    db.session.expire_all()
    link = db.session.get(CalendarLink, link_id)
    rows = db.session.scalars(
        db.select(Booking).where(Booking.object_id == link.object_id).order_by(Booking.start_at, Booking.id)
    ).all()
    return [
        (b.remark.split("\n")[0], b.start_at, b.end_at, b.status.name, (b.extra or {}).get("outlook_event_id"))
        for b in rows
    ]


def wait_until_synced(app, link_id, timeout=10):
    """Wait for the link's subscription, its first sync and the sync queued with the subscription; return the link."""

    def ready():
        with app.app_context():
            link = link_of(link_id)
            synced = link.subscription_id and link.last_sync_status == "ok" and link.delta_link
            pending = db.session.scalar(
                db.select(db.func.count(Job.id)).where(Job.kind == SYNC_LINK, Job.key == str(link_id))
            )
            return link if synced and not pending else None

    return eventually(ready, timeout=timeout, message=f"link {link_id} was not subscribed and synced in time")


def utc(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def in_days(days, hour, minute=0):
    """A UTC time *days* from now at hh:mm, as the control API takes it; inside every sync window."""
    moment = datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M")


class _FormReader(HTMLParser):
    """The first form of a page: its action and its named fields (hidden inputs and selects)."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self._done = None, {}, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._done:
            return
        if tag == "form" and self.action is None:
            self.action = attrs.get("action")
        elif tag == "input" and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._done = True


def sign_in_at_microsoft(authorize_url, account, decision="accept"):
    """What a person does on the consent page: open it, pick the account, press Accept (or Cancel).

    Returns the URL the browser is sent back to.
    """
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    form = _FormReader()
    form.feed(page.text)
    answer = requests.post(
        urljoin(authorize_url, form.action),
        data={**form.fields, "account": account, "decision": decision},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]
