import contextlib
from types import SimpleNamespace

import pytest
from werkzeug.security import generate_password_hash

from app import create_app
from app.extensions import db
from app.models import BookableObject, BookingStatus, Customer, User
from app.models.organisation import ROLE_ADMIN, ROLE_SUPPORT
from app.orgs.provisioning import create_organisation
from config import TestConfig
from tests.pg import postgres_base_url, temporary_schema

PASSWORD = "correct horse battery"
# Hashing is deliberately slow; one hash serves every test user.
PASSWORD_HASH = generate_password_hash(PASSWORD)

BACKENDS = ["sqlite"] + (["postgresql"] if postgres_base_url() else [])


def pytest_collection_modifyitems(config, items):
    """Tests of PostgreSQL-only behaviour (row locks, SKIP LOCKED) exist only on that backend."""
    kept, dropped = [], []
    for item in items:
        wrong_backend = item.get_closest_marker("postgresql_only") and "[postgresql" not in item.nodeid
        (dropped if wrong_backend else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@contextlib.contextmanager
def database_for(backend, tmp_path_factory, prefix="t"):
    """A URL of an empty database of the given kind, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        with temporary_schema(postgres_base_url(), prefix) as url:
            yield url


def config_for(database_url, **overrides):
    return type("Config", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": database_url, **overrides})


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory):
    """Database-facing tests run once per backend: SQLite always, PostgreSQL when configured."""
    with database_for(request.param, tmp_path_factory) as url:
        app = create_app(config_for(url), instance_path=str(tmp_path_factory.mktemp("instance")))
        with app.app_context():
            db.create_all()
            db.engine.dispose()
        yield url


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("instance"))


@pytest.fixture
def app(database_url, instance_dir):
    app = create_app(config_for(database_url), instance_path=instance_dir)
    yield app
    with app.app_context():
        db.session.remove()
        _empty_all_tables()
        db.engine.dispose()


def _empty_all_tables():
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture(autouse=True)
def own_graph_state(monkeypatch):
    """Process-wide Graph state (the pooled session, cached app-only tokens) starts afresh per test."""
    from app.graph import client as graph_client_module
    from app.graph import tokens

    monkeypatch.setattr(graph_client_module, "_shared_session", None)
    monkeypatch.setattr(tokens, "application_tokens", tokens.ApplicationTokenCache())


@pytest.fixture
def mocked():
    """Every HTTP call must be registered here; an unregistered one fails, and so does one never made."""
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client(app):
    return app.test_client()


def add_user(email, role, organisation_id=None):
    user = User(email=email, role=role, organisation_id=organisation_id, password_hash=PASSWORD_HASH)
    db.session.add(user)
    db.session.flush()
    return user


@pytest.fixture
def world(app):
    """Two organisations, each with an admin, an object, a customer and the default statuses; one support user."""
    with app.app_context():
        ids = SimpleNamespace()
        for key, name in (("a", "Alpha Rooms"), ("b", "Beta Halls")):
            organisation = create_organisation(name)
            admin = add_user(f"admin@{key}.example", ROLE_ADMIN, organisation.id)
            room = BookableObject(organisation_id=organisation.id, name=f"Room {key.upper()}", capacity=8)
            customer = Customer(organisation_id=organisation.id, name=f"Customer {key}", email=f"guest@{key}.example")
            db.session.add_all([room, customer])
            db.session.flush()
            statuses = {
                s.name: s.id
                for s in db.session.scalars(
                    db.select(BookingStatus).where(BookingStatus.organisation_id == organisation.id)
                )
            }
            setattr(
                ids,
                key,
                SimpleNamespace(
                    org=organisation.id,
                    admin=admin.email,
                    object=room.id,
                    customer=customer.id,
                    statuses=statuses,
                ),
            )
        ids.support = add_user("support@ireserve.example", ROLE_SUPPORT).email
        db.session.commit()
        return ids


@pytest.fixture
def login(client):
    def sign_in(email, password=PASSWORD):
        response = client.post("/login", data={"email": email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return sign_in


@pytest.fixture
def clock(monkeypatch):
    """The application's notion of now, frozen and movable: `clock.now`, `clock.advance(...)`."""
    from datetime import UTC, datetime

    import app.clock

    class Clock:
        now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

        def advance(self, delta):
            self.now = self.now + delta

    frozen = Clock()
    monkeypatch.setattr(app.clock, "utcnow", lambda: frozen.now)
    return frozen


@pytest.fixture
def database_clock(monkeypatch, clock):
    """The database server's clock, made to follow `clock`: leases then expire as the test moves time."""
    from app.database import server_time

    monkeypatch.setattr(server_time, "database_now", lambda: clock.now)
    return clock
