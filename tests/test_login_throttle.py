"""Sign-in throttling: per account and per client address, one answer whether or not the account exists."""

import shutil
import socket
import subprocess
import time

import pytest

from app import create_app
from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD, _empty_all_tables, config_for

THROTTLED = "Too many sign-in attempts; try again in a few minutes."
WRONG = "Unknown e-mail address or wrong password."
PER_ACCOUNT = 3
PER_ADDRESS = 5


def throttled_config(database_url, **overrides):
    return config_for(
        database_url,
        RATELIMIT_ENABLED=True,
        LOGIN_RATE_LIMIT_PER_ACCOUNT=f"{PER_ACCOUNT}/hour",
        LOGIN_RATE_LIMIT_PER_ADDRESS=f"{PER_ADDRESS}/hour",
        **overrides,
    )


@pytest.fixture
def app(database_url, instance_dir):
    """The portal with throttling on and small limits (the other test files run with it off)."""
    app = create_app(throttled_config(database_url), instance_path=instance_dir)
    yield app
    with app.app_context():
        db.session.remove()
        _empty_all_tables()
        db.engine.dispose()


def attempt(client, email, password="not the password", address="198.51.100.1", **options):
    return client.post(
        "/login", data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}, **options
    )


def test_one_account_is_throttled_across_addresses(client, world):
    for number in range(PER_ACCOUNT):
        refused = attempt(client, world.a.admin, address=f"198.51.100.{number + 1}")
        assert refused.status_code == 200 and WRONG in refused.get_data(as_text=True)

    throttled = attempt(client, world.a.admin.upper(), password=PASSWORD, address="203.0.113.50")

    assert throttled.status_code == 429
    assert THROTTLED in throttled.get_data(as_text=True)
    assert client.get(f"/orgs/{world.a.org}").location.startswith("/login"), "the right password did not sign in"
    other_account = attempt(client, world.b.admin, password=PASSWORD, address="203.0.113.50")
    assert other_account.status_code == 302, "another account from that address still signs in"


def test_one_address_is_throttled_across_accounts(client, world):
    for number in range(PER_ADDRESS):
        assert attempt(client, f"guess-{number}@a.example").status_code == 200

    throttled = attempt(client, world.a.admin, password=PASSWORD)

    assert throttled.status_code == 429
    assert THROTTLED in throttled.get_data(as_text=True)
    assert client.get(f"/orgs/{world.a.org}").location.startswith("/login")
    assert attempt(client, world.a.admin, password=PASSWORD, address="198.51.100.99").status_code == 302


def test_the_throttled_answer_does_not_tell_whether_the_account_exists(client, world):
    unknown = "nobody@a.example"
    for number in range(PER_ACCOUNT):
        attempt(client, world.a.admin, address=f"198.51.100.{number + 1}")
        attempt(client, unknown, address=f"192.0.2.{number + 1}")

    for_known = attempt(client, world.a.admin, address="203.0.113.7")
    for_unknown = attempt(client, unknown, address="203.0.113.8")

    assert for_known.status_code == for_unknown.status_code == 429
    known_page = for_known.get_data(as_text=True).replace(world.a.admin, "EMAIL")
    unknown_page = for_unknown.get_data(as_text=True).replace(unknown, "EMAIL")
    assert known_page == unknown_page
    assert THROTTLED in known_page and WRONG not in known_page


def test_successful_sign_ins_are_not_counted(client, world):
    for _ in range(PER_ADDRESS + 1):
        assert attempt(client, world.a.admin, password=PASSWORD).status_code == 302
        client.post("/logout")

    assert attempt(client, world.a.admin).status_code == 200, "a wrong password is refused, not throttled"


def test_showing_the_sign_in_page_is_never_throttled(client, world):
    for number in range(PER_ADDRESS):
        attempt(client, f"guess-{number}@a.example")

    page = client.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert page.status_code == 200 and THROTTLED not in page.get_data(as_text=True)


def test_first_run_setup_is_throttled_per_address(client, app):
    mismatched = {"email": "first@example.com", "password": "long enough pw", "password_again": "different pw"}
    for _ in range(PER_ADDRESS):
        assert client.post("/setup", data=mismatched).status_code == 200

    throttled = client.post("/setup", data={**mismatched, "password_again": "long enough pw"})

    assert throttled.status_code == 429
    assert THROTTLED in throttled.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0


def test_without_a_proxy_setting_the_forwarded_address_is_ignored(client, world):
    """A client must not dodge the per-address limit by inventing X-Forwarded-For headers."""
    for number in range(PER_ADDRESS):
        attempt(client, f"guess-{number}@a.example", headers={"X-Forwarded-For": f"192.0.2.{number}"})

    throttled = attempt(client, world.a.admin, password=PASSWORD, headers={"X-Forwarded-For": "192.0.2.200"})
    assert throttled.status_code == 429


def test_behind_a_configured_proxy_each_client_address_counts_on_its_own(database_url, instance_dir, world):
    portal = create_app(throttled_config(database_url, FORWARDED_FOR_PROXIES=1), instance_path=instance_dir)
    client = portal.test_client()
    proxy = "10.0.0.2"
    for number in range(PER_ADDRESS):
        attempt(client, f"guess-{number}@a.example", address=proxy, headers={"X-Forwarded-For": "192.0.2.1"})

    assert (
        attempt(
            client, world.a.admin, password=PASSWORD, address=proxy, headers={"X-Forwarded-For": "192.0.2.2"}
        ).status_code
        == 302
    )
    assert (
        attempt(
            client, world.b.admin, password=PASSWORD, address=proxy, headers={"X-Forwarded-For": "192.0.2.1"}
        ).status_code
        == 429
    )
    with portal.app_context():
        db.engine.dispose()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    """A private redis-server on a free port, when the machine has one."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("needs redis-server on PATH")
    pytest.importorskip("redis")
    port = _free_port()
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        connection = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                connection.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_attempts_are_kept_in_redis_when_configured(database_url, instance_dir, redis_url, world):
    """A portal started afresh (another worker, a restart) still sees the failed attempts kept in Redis."""

    def portal():
        return create_app(throttled_config(database_url, RATELIMIT_STORAGE_URI=redis_url), instance_path=instance_dir)

    first = portal()
    for number in range(PER_ACCOUNT):
        attempt(first.test_client(), world.a.admin, address=f"198.51.100.{number + 1}")
    restarted = portal()

    assert attempt(restarted.test_client(), world.a.admin, password=PASSWORD).status_code == 429
    import redis

    keys = b" ".join(redis.Redis.from_url(redis_url).keys("*")).decode()
    assert "account:" in keys and world.a.admin not in keys, "what was typed as e-mail is stored hashed"
    for each in (first, restarted):
        with each.app_context():
            db.engine.dispose()


def test_with_redis_unreachable_sign_in_works_and_each_process_counts_alone(database_url, instance_dir, world):
    pytest.importorskip("redis")
    nowhere = f"redis://127.0.0.1:{_free_port()}/0"
    portal = create_app(throttled_config(database_url, RATELIMIT_STORAGE_URI=nowhere), instance_path=instance_dir)
    client = portal.test_client()

    assert attempt(portal.test_client(), world.b.admin, password=PASSWORD).status_code == 302
    for number in range(PER_ACCOUNT):
        assert attempt(client, world.a.admin, address=f"198.51.100.{number + 1}").status_code == 200
    assert attempt(client, world.a.admin, password=PASSWORD).status_code == 429
    with portal.app_context():
        db.engine.dispose()
