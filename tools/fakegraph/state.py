"""The stand-in's whole world, in memory: tenants, apps, mailboxes, tokens, subscriptions.

One :class:`World` serves one process. Every handler works on it under `world.lock` (a
re-entrant lock, so helpers may take it again); network calls (validation handshakes,
notification deliveries) happen outside it, so a slow receiver never blocks Graph.
The world has its own clock, which the control API can move forward to expire tokens
and subscriptions without waiting.
"""

import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .calendar import Calendar
from .faults import Faults

USER = "user"
ROOM = "room"
REQUEST_LOG_SIZE = 5000


@dataclass
class Settings:
    """Behaviour switches; every one can be changed through the control API."""

    #: Seconds an access token lives (Microsoft: 60 to 90 minutes; `expires_in` says which).
    access_token_seconds: int = 3599
    #: Days a refresh token may lie unused before AADSTS700082.
    refresh_inactivity_days: int = 90
    #: Microsoft keeps a used refresh token valid; True revokes it on use instead.
    strict_refresh_rotation: bool = False
    #: Longest subscription lifetime accepted (newest docs: 10,080 minutes for events).
    max_subscription_minutes: int = 10080
    #: Seconds between a change and its notification leaving.
    notification_delay: float = 0.1
    #: Waits before each retry of a delivery the receiver refused; then it is dropped.
    notification_retry_delays: tuple = (0.2, 0.5, 1.0, 2.0)
    #: Page size of calendarView delta without `Prefer: odata.maxpagesize`.
    default_page_size: int = 10
    #: Zone the control page shows and reads times in.
    display_zone: str = "UTC"
    #: Account the consent page preselects when the request gives no `login_hint`.
    consent_account: str = ""

    def update(self, values):
        for name, value in values.items():
            if not hasattr(self, name):
                raise KeyError(name)
            current = getattr(self, name)
            if isinstance(current, tuple):
                value = tuple(value)
            elif isinstance(current, bool):
                value = bool(value)
            elif isinstance(current, (int, float)):
                value = type(current)(value)
            setattr(self, name, value)


@dataclass
class Tenant:
    id: str
    domain: str
    name: str


@dataclass
class App:
    """An app registration: its secret, redirect URIs and application permissions."""

    tenant_id: str
    client_id: str
    secret: str
    name: str
    redirect_uris: list = field(default_factory=list)
    permissions: set = field(default_factory=lambda: {"Calendars.Read"})


@dataclass
class Mailbox:
    upn: str
    display_name: str
    kind: str
    tenant_id: str
    object_id: str
    #: Excluded by an application access policy: app-only calls get ErrorAccessDenied.
    app_only_denied: bool = False
    calendar: Calendar = None
    #: What Places tells of a room.
    capacity: int | None = None
    building: str | None = None
    floor_label: str | None = None
    floor_number: int | None = None

    @property
    def address(self):
        return {"name": self.display_name, "address": self.upn}


@dataclass
class RoomList:
    """A room list of Places (usually one building): addressed by its e-mail, holding room UPNs."""

    email: str
    display_name: str
    tenant_id: str
    id: str
    rooms: list = field(default_factory=list)


@dataclass
class Grant:
    """An issued token. Access tokens carry no refresh data; refresh tokens reach no API."""

    value: str
    kind: str
    tenant_id: str
    client_id: str
    upn: str | None
    scopes: tuple
    issued_at: datetime
    expires_at: datetime
    last_used: datetime
    revoked: bool = False

    @property
    def app_only(self):
        return self.upn is None


@dataclass
class AuthCode:
    value: str
    tenant_id: str
    client_id: str
    upn: str
    redirect_uri: str
    scopes: tuple
    challenge: str | None
    challenge_method: str | None
    expires_at: datetime
    redeemed: bool = False


@dataclass
class Subscription:
    id: str
    tenant_id: str
    client_id: str
    creator: str | None
    mailbox: str
    resource: str
    change_types: tuple
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires_at: datetime
    created_at: datetime
    tls_version: str = "v1_2"


class World:
    def __init__(self, settings=None):
        self.lock = threading.RLock()
        self.settings = settings or Settings()
        self.clock_offset = timedelta()
        self.faults = Faults()
        self.notifier = None
        self.reset()

    def reset(self):
        """Forget everything except settings: tenants, mailboxes, tokens, subscriptions, logs."""
        with self.lock:
            self.tenants = {}
            self.apps = {}
            self.mailboxes = {}
            self.room_lists = {}
            self.grants = {}
            self.codes = {}
            self.delta_states = {}
            self.pages = {}
            self.subscriptions = {}
            self.requests = deque(maxlen=REQUEST_LOG_SIZE)
            self.deliveries = deque(maxlen=REQUEST_LOG_SIZE)
            self.faults.clear()

    # -- the clock ------------------------------------------------------------------------

    def now(self):
        return datetime.now(UTC) + self.clock_offset

    def advance_clock(self, seconds):
        with self.lock:
            self.clock_offset += timedelta(seconds=seconds)

    # -- directory ------------------------------------------------------------------------

    def add_tenant(self, tenant_id=None, domain=None, name=None):
        with self.lock:
            tenant_id = (tenant_id or str(uuid.uuid4())).lower()
            tenant = Tenant(tenant_id, (domain or f"{tenant_id[:8]}.example").lower(), name or domain or tenant_id)
            self.tenants[tenant_id] = tenant
            return tenant

    def tenant(self, reference):
        """A tenant by id or domain (case-insensitive), or None."""
        key = (reference or "").lower()
        with self.lock:
            if key in self.tenants:
                return self.tenants[key]
            return next((t for t in self.tenants.values() if t.domain == key), None)

    def add_app(self, tenant_id, client_id, secret, name=None, redirect_uris=(), permissions=None):
        with self.lock:
            app = App(tenant_id, client_id.lower(), secret, name or "App", list(redirect_uris))
            if permissions is not None:
                app.permissions = set(permissions)
            self.apps[(tenant_id, app.client_id)] = app
            return app

    def app(self, tenant_id, client_id):
        return self.apps.get((tenant_id, (client_id or "").lower()))

    def add_mailbox(self, tenant_id, upn, display_name=None, kind=USER, app_only_denied=False, **place):
        """Add a mailbox; *place* may carry capacity, building, floor_label and floor_number of a room."""
        with self.lock:
            upn = upn.lower()
            mailbox = Mailbox(
                upn=upn,
                display_name=display_name or upn.split("@")[0],
                kind=kind,
                tenant_id=tenant_id,
                object_id=str(uuid.uuid4()),
                app_only_denied=app_only_denied,
                calendar=Calendar(upn),
                **place,
            )
            self.mailboxes[upn] = mailbox
            return mailbox

    def mailbox(self, reference):
        """A mailbox by UPN (case-insensitive) or object id, or None."""
        key = (reference or "").lower()
        with self.lock:
            if key in self.mailboxes:
                return self.mailboxes[key]
            return next((m for m in self.mailboxes.values() if m.object_id == key), None)

    def mailboxes_of(self, tenant_id):
        with self.lock:
            return sorted((m for m in self.mailboxes.values() if m.tenant_id == tenant_id), key=lambda m: m.upn)

    def add_room_list(self, tenant_id, email, display_name=None, rooms=()):
        with self.lock:
            email = email.lower()
            room_list = RoomList(
                email, display_name or email.split("@")[0], tenant_id, str(uuid.uuid4()), [r.lower() for r in rooms]
            )
            self.room_lists[email] = room_list
            return room_list

    def room_lists_of(self, tenant_id):
        with self.lock:
            return sorted((r for r in self.room_lists.values() if r.tenant_id == tenant_id), key=lambda r: r.email)

    # -- logs -----------------------------------------------------------------------------

    def log_request(self, entry):
        with self.lock:
            self.requests.append(entry)

    def log_delivery(self, entry):
        with self.lock:
            self.deliveries.append(entry)
