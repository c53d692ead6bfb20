"""Fixtures of the scale-out tests: the stand-in, and both instances started once for the module.

The Microsoft 365 stand-in is served from this process on a thread, so the tests can read
its request log and inject latency; the test process seeds the shared database through
the models (see cluster.py for the instances themselves).
"""

import os

import pytest
from sqlalchemy import create_engine

from app import create_app
from app.extensions import db
from app.models import BookingStatus, Integration
from app.models.integration import AUTH_APPLICATION, CONNECTION_CONNECTED
from app.orgs.provisioning import create_organisation
from config import TestConfig
from tests.conftest import _empty_all_tables, config_for
from tests.e2e.helpers import CLIENT_ID, DOMAIN, M365, ORGANIZER, SECRET, TENANT
from tests.live import serving
from tests.scaleout.cluster import INSTANCE_SETTINGS, PASSED_THROUGH, Cluster, Instance
from tools.fakegraph import Settings, World, shut_down, use_world
from tools.fakegraph import create_app as create_stand_in


@pytest.fixture(scope="module")
def stand_in():
    """The Microsoft 365 stand-in on a thread of this process: one tenant, the app registration, an organiser."""
    app = create_stand_in()
    world = use_world(app, World(Settings()))
    with serving(app) as base_url:
        m365 = M365(base_url, world)
        m365.control("tenants", {"id": TENANT, "domain": DOMAIN, "name": "Contoso"})
        m365.control(f"tenants/{TENANT}/apps", {"client_id": CLIENT_ID, "client_secret": SECRET, "name": "i-Reserve"})
        m365.control(f"tenants/{TENANT}/mailboxes", {"upn": ORGANIZER, "display_name": "Adele Vance"})
        yield m365
    shut_down(app)


def _add_connected_integration():
    """An organisation with an application-mode integration that passed its connection test."""
    organisation = create_organisation("Scale-out Rooms")
    statuses = {
        status.name: status.id
        for status in db.session.scalars(
            db.select(BookingStatus).where(BookingStatus.organisation_id == organisation.id)
        )
    }
    integration = Integration(
        organisation_id=organisation.id,
        name="Outlook",
        auth_mode=AUTH_APPLICATION,
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        cancel_status_id=statuses["Cancelled"],
        new_booking_status_id=statuses["Confirmed"],
        connection_state=CONNECTION_CONNECTED,
    )
    db.session.add(integration)
    db.session.commit()
    return integration.id


@pytest.fixture(scope="module")
def scaleout(database_url, stand_in, tmp_path_factory):
    """Both instances on the session's database, started once for the module; killed at its end."""
    root = tmp_path_factory.mktemp("scaleout")
    portal = create_app(config_for(database_url), instance_path=str(root / "seeding"))
    with portal.app_context():
        _empty_all_tables()
        integration_id = _add_connected_integration()
        db.session.remove()
    probe_file = root / "periodic-probe.log"
    environment = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    environment.update(
        INSTANCE_SETTINGS,
        DATABASE_URL=database_url,
        # Both instances must read what the other (and this process) encrypted and signed.
        SECRET_KEY=TestConfig.SECRET_KEY,
        ENCRYPTION_KEY=TestConfig.ENCRYPTION_KEY,
        GRAPH_BASE_URL=f"{stand_in.base_url}/v1.0",
        MS_LOGIN_BASE_URL=f"{stand_in.base_url}/login",
        SCALEOUT_PROBE_FILE=str(probe_file),
    )
    instances = [Instance(name, root / name, environment) for name in ("a", "b")]
    engine = create_engine(database_url)
    cluster = Cluster(instances, portal, engine, stand_in, probe_file, integration_id)
    try:
        cluster.ensure_running()
        yield cluster
    finally:
        for instance in instances:
            instance.kill()
        engine.dispose()
        with portal.app_context():
            db.session.remove()
            _empty_all_tables()
            db.engine.dispose()


@pytest.fixture
def two_instances(scaleout):
    """Both instances up (an earlier test may have killed one), their runners started."""
    scaleout.ensure_running()
    return scaleout
