"""The real portal against the Microsoft 365 stand-in, over HTTP on 127.0.0.1.

Both run in this process on werkzeug servers of their own: the stand-in serves Graph and
the sign-in pages and POSTs notifications to the portal's webhook; the portal's job
runner claims the jobs its webhook and pages queue. The periodic jobs are not scheduled
(their intervals are minutes long): tests call them, with the product's clock moved,
exactly as the scheduler would.

requests-oauthlib refuses plain http unless OAUTHLIB_INSECURE_TRANSPORT is set, so the
portal runs with it here, as it does in `make demo`.
"""

import pytest

from app import clock as product_clock
from app import create_app
from app.extensions import db
from app.scheduler.runner import Runner
from tests.clocks import MovedClock
from tests.conftest import _empty_all_tables, config_for
from tests.e2e.helpers import CLIENT_ID, DENIED_ROOM, DOMAIN, M365, ORGANIZER, PAGE_SIZE, ROOMS, SECRET, TENANT, USER
from tests.live import serving
from tools.fakegraph import Settings, World, shut_down, use_world
from tools.fakegraph import create_app as create_stand_in


@pytest.fixture(scope="session")
def stand_in_server():
    app = create_stand_in()
    with serving(app) as base_url:
        yield app, base_url
    shut_down(app)


@pytest.fixture
def m365(stand_in_server):
    """A fresh stand-in world: one tenant, one app registration, two users, three rooms and a denied one."""
    app, base_url = stand_in_server
    world = use_world(app, World(Settings(notification_delay=0.05, notification_retry_delays=(0.2, 0.5))))
    stand_in = M365(base_url, world)
    stand_in.control("tenants", {"id": TENANT, "domain": DOMAIN, "name": "Contoso"})
    stand_in.control(f"tenants/{TENANT}/apps", {"client_id": CLIENT_ID, "client_secret": SECRET, "name": "i-Reserve"})
    stand_in.control(f"tenants/{TENANT}/mailboxes", {"upn": USER, "display_name": "Megan Bowen"})
    stand_in.control(f"tenants/{TENANT}/mailboxes", {"upn": ORGANIZER, "display_name": "Adele Vance"})
    for number, room in enumerate(ROOMS, start=1):
        stand_in.control(f"tenants/{TENANT}/mailboxes", {"upn": room, "display_name": f"Room {number}", "kind": "room"})
    stand_in.control(f"tenants/{TENANT}/mailboxes", {"upn": DENIED_ROOM, "kind": "room", "app_only_denied": True})
    yield stand_in
    world.notifier.stop()


@pytest.fixture
def moved_clock(monkeypatch):
    """The product's clock, which tests move forward to make renewals, polling and retries due."""
    clock = MovedClock()
    monkeypatch.setattr(product_clock, "utcnow", clock.now)
    return clock


@pytest.fixture
def app(database_url, instance_dir, m365, moved_clock, monkeypatch):
    """The portal, configured to find Microsoft at the stand-in (overrides the root `app` fixture)."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    portal = create_app(
        config_for(
            database_url,
            GRAPH_BASE_URL=f"{m365.base_url}/v1.0",
            MS_LOGIN_BASE_URL=f"{m365.base_url}/login",
            SYNC_PAGE_SIZE=PAGE_SIZE,
        ),
        instance_path=instance_dir,
    )
    yield portal
    with portal.app_context():
        db.session.remove()
        _empty_all_tables()
        db.engine.dispose()


@pytest.fixture
def portal(app, m365):
    """The portal served on 127.0.0.1 (reachable for notifications) with its job runner; yields its base URL."""
    with serving(app) as base_url:
        app.config["PUBLIC_BASE_URL"] = base_url
        m365.control(
            f"tenants/{TENANT}/apps",
            {
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "name": "i-Reserve",
                "redirect_uris": [f"{base_url}/oauth/callback"],
            },
        )
        runner = Runner(app, workers=2, poll_seconds=0.05, tick_seconds=0.2, lease_seconds=1, periodic_jobs=[])
        runner.start()
        try:
            yield base_url
        finally:
            # Deliveries in flight finish against the running portal, so no late notification
            # queues a job after the tables were emptied for the next test.
            m365.world.notifier.stop()
            runner.stop(grace_seconds=5)
