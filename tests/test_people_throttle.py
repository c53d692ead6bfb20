"""The forgotten-password form is throttled like sign-in, the same for known and unknown addresses."""

import pytest

from app import create_app
from app.extensions import db
from tests.conftest import _empty_all_tables
from tests.test_alerts_delivery import smtp_server  # noqa: F401  (fixture)
from tests.test_login_throttle import PER_ACCOUNT, PER_ADDRESS, THROTTLED, throttled_config
from tests.test_people import run_link_jobs


@pytest.fixture
def app(database_url, instance_dir):
    app = create_app(throttled_config(database_url), instance_path=instance_dir)
    yield app
    with app.app_context():
        db.session.remove()
        _empty_all_tables()
        db.engine.dispose()


def ask(client, email, address):
    return client.post("/forgot-password", data={"email": email}, environ_base={"REMOTE_ADDR": address})


def test_one_address_asked_for_too_often_is_refused_whether_or_not_it_exists(
    app,
    client,
    world,
    smtp_server,  # noqa: F811
):
    for email in (world.a.admin, "nobody@a.example"):
        for number in range(PER_ACCOUNT):
            assert ask(client, email, f"198.51.100.{number + 1}").status_code == 200
        throttled = ask(client, email, "203.0.113.9")
        assert throttled.status_code == 429
        assert THROTTLED in throttled.get_data(as_text=True)

    run_link_jobs(app)
    assert smtp_server.recipients() == [[world.a.admin]], "repeated requests coalesce into one e-mail"


def test_one_client_asking_for_many_addresses_is_refused(app, client, world, smtp_server):  # noqa: F811
    for number in range(PER_ADDRESS):
        assert ask(client, f"someone{number}@a.example", "198.51.100.7").status_code == 200
    assert ask(client, world.b.admin, "198.51.100.7").status_code == 429
    run_link_jobs(app)
    assert smtp_server.messages() == []
