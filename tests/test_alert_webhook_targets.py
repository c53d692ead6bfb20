"""An alert webhook may only reach the public internet: checked on save, again before each send.

Name resolution is faked throughout (tests.alert_helpers.FakeDns); the HTTP side is
`responses`, or a local server where the test must see which address was connected to.
"""

import datetime
import http.server
import io
import ssl
import threading

import pytest
import requests
import responses
from sqlalchemy import select

from app.alerts import delivery, incidents, webhook_target
from app.extensions import db
from app.models import Job, Organisation
from app.models.integration import CONNECTION_NEEDS_RECONNECT
from app.models.job import JOB_FAILED, JOB_QUEUED
from tests.alert_helpers import HOOK_A, HOOK_B, PUBLIC_ADDRESS, install_fake_dns, run_alert_jobs, set_webhook
from tests.sync_helpers import make_room_link

REFUSED_BY_DEFAULT = "which alert webhooks may not reach; set ALERT_WEBHOOK_ALLOW_PRIVATE=true"


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    return install_fake_dns(monkeypatch)


@pytest.fixture
def ctx(app, world, clock):
    with app.app_context():
        yield app


def save_webhook(client, world, url):
    form = {"name": "Alpha Rooms", "timezone": "Europe/Amsterdam", "alert_webhook_url": url}
    return client.post(f"/orgs/{world.a.org}/edit", data=form)


def stored_webhook(app, world):
    with app.app_context():
        return db.session.get(Organisation, world.a.org).alert_webhook_url


def open_an_incident(world, clock):
    """An incident of organisation A, whose notices are then due as send_alert jobs."""
    link = make_room_link(world)
    link.integration.connection_state = CONNECTION_NEEDS_RECONNECT
    db.session.commit()
    incidents.evaluate(clock.now)


def webhook_job():
    return db.session.scalar(select(Job).where(Job.kind == delivery.SEND_ALERT))


# -- on save ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "resolves_to", "shown"),
    [
        ("https://127.0.0.1/hook", None, "a loopback address"),
        ("https://localhost/hook", "127.0.0.1", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", None, "a link-local address"),
        ("https://10.0.0.5/hook", None, "a private network address"),
        ("https://[::1]/hook", None, "a loopback address"),
        ("https://[fe80::1]/hook", None, "a link-local address"),
        ("https://[::ffff:127.0.0.1]/hook", None, "a loopback address"),
        ("https://[fd00::5]/hook", None, "a private network address"),
        ("https://0.0.0.0/hook", None, "an unspecified address"),
        ("https://[::]/hook", None, "an unspecified address"),
        ("https://intranet.alpha.example/hook", "192.168.40.17", "a private network address"),
    ],
)
def test_an_address_outside_the_public_internet_is_refused_next_to_the_field(
    login, world, app, dns, url, resolves_to, shown
):
    if resolves_to:
        dns.answer(url.split("/")[2], resolves_to)
    response = save_webhook(login(world.a.admin), world, url)

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="alert_webhook_url-error"' in page
    assert f"This address resolves to {shown}" in page
    if resolves_to:
        assert resolves_to not in page, "the page does not tell what the name resolves to"
    assert stored_webhook(app, world) is None


def test_a_name_with_one_private_address_among_public_ones_is_refused(login, world, app, dns):
    dns.answer("hooks.alpha.example", PUBLIC_ADDRESS, "10.1.2.3")
    response = save_webhook(login(world.a.admin), world, "https://hooks.alpha.example/a")
    assert response.status_code == 200
    assert REFUSED_BY_DEFAULT in response.get_data(as_text=True)
    assert stored_webhook(app, world) is None


def test_a_name_that_does_not_resolve_is_refused_next_to_the_field(login, world, app):
    response = save_webhook(login(world.a.admin), world, "https://hooks.nowhere.example/a")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="alert_webhook_url-error"' in page and "could not be resolved" in page
    assert stored_webhook(app, world) is None


def test_a_public_address_is_saved(login, world, app, dns):
    client = login(world.a.admin)
    assert save_webhook(client, world, "https://hooks.alpha.example/a?key=k").status_code == 302
    assert stored_webhook(app, world) == "https://hooks.alpha.example/a?key=k"
    assert save_webhook(client, world, f"http://{PUBLIC_ADDRESS}:8080/a").status_code == 302
    assert stored_webhook(app, world) == f"http://{PUBLIC_ADDRESS}:8080/a"


def test_the_installation_may_allow_private_networks_but_never_link_local(login, world, app, dns):
    app.config["ALERT_WEBHOOK_ALLOW_PRIVATE"] = True
    dns.answer("relay.alpha.internal", "10.0.0.5")
    client = login(world.a.admin)
    assert save_webhook(client, world, "https://relay.alpha.internal/hook").status_code == 302
    assert save_webhook(client, world, "http://127.0.0.1:9093/hook").status_code == 302
    assert stored_webhook(app, world) == "http://127.0.0.1:9093/hook"

    response = save_webhook(client, world, "http://169.254.169.254/latest/meta-data/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "a link-local address" in page and "ALERT_WEBHOOK_ALLOW_PRIVATE" not in page
    assert stored_webhook(app, world) == "http://127.0.0.1:9093/hook"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.5",
        "169.254.169.254",
        "fe80::1",
        "fe80::1%eth0",
        "fd00::1",
        "fc00::1",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "240.0.0.1",
        "255.255.255.255",
        "2002:7f00:1::",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",
        "64:ff9b::a00:5",
        "fec0::1",
    ],
)
def test_addresses_outside_the_public_internet_are_recognised(address):
    assert webhook_target.address_kind(address) is not None


@pytest.mark.parametrize("address", [PUBLIC_ADDRESS, "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address):
    assert webhook_target.address_kind(address) is None


# -- before each send ------------------------------------------------------------------


def test_a_name_that_turns_private_after_saving_is_not_called(login, world, app, clock, dns, mocked):
    client = login(world.a.admin)
    assert save_webhook(client, world, HOOK_A).status_code == 302
    dns.answer("hooks.alpha.example", "10.0.0.5")
    with app.app_context():
        open_an_incident(world, clock)
        assert set(run_alert_jobs().values()) == {JOB_FAILED}, "refused for good, not retried"
        error = webhook_job().last_error
    assert len(mocked.calls) == 0, "nothing was sent to the private address"
    assert "a private network address, which alert webhooks may not reach" in error
    assert "10.0.0.5" not in error and "secret-a" not in error

    page = client.get(f"/orgs/{world.a.org}/incidents").get_data(as_text=True)
    assert "The alert webhook was not called: its address resolves to a private network address" in page


def test_a_name_that_stops_resolving_is_retried(ctx, world, clock, dns, mocked):
    set_webhook(world.a.org, HOOK_A)
    del dns.answers["hooks.alpha.example"]
    open_an_incident(world, clock)
    assert set(run_alert_jobs().values()) == {JOB_QUEUED}
    assert "could not be resolved" in webhook_job().last_error
    assert len(mocked.calls) == 0


def test_a_redirect_is_a_failure_with_a_plain_reason_and_is_not_followed(ctx, world, clock):
    set_webhook(world.a.org, HOOK_A)
    open_an_incident(world, clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(HOOK_A, status=307, headers={"Location": HOOK_B})
        mock.post(HOOK_B)
        assert set(run_alert_jobs().values()) == {JOB_FAILED}
        assert [call.request.url for call in mock.calls] == [HOOK_A]
    error = webhook_job().last_error
    assert (
        error == "DeliveryFailed: The alert webhook answered 307, a redirect; alert webhooks do not follow redirects."
    )
    assert HOOK_B not in error


class EndlessBody(io.RawIOBase):
    """A response body of `size` bytes that counts how much of it was read."""

    def __init__(self, size):
        self.remaining = size
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self.remaining)
        buffer[:count] = b"x" * count
        self.remaining -= count
        self.read_bytes += count
        return count


def test_a_huge_answer_is_not_downloaded(ctx, world, clock, mocked):
    set_webhook(world.a.org, HOOK_A)
    open_an_incident(world, clock)
    body = EndlessBody(64 * 1024 * 1024)
    mocked.post(HOOK_A, body=io.BufferedReader(body))
    assert set(run_alert_jobs().values()) == {"sent"}
    assert body.read_bytes <= 16 * 1024


# -- connecting to the checked address -------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    """Keeps the Host header, path and body of every POST on its server's `received`."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Host"], self.path, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    """A local HTTP server on 127.0.0.1 that keeps what it was POSTed; wrap `.socket` for TLS."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    yield server, thread
    server.shutdown()
    server.server_close()


def test_the_send_connects_to_the_checked_address_and_names_the_host(ctx, world, clock, dns, receiver):
    server, thread = receiver
    thread.start()
    port = server.server_address[1]
    ctx.config["ALERT_WEBHOOK_ALLOW_PRIVATE"] = True
    # Nothing listens on 127.0.0.2: a connection made after a second lookup would be refused.
    dns.rebind("hooks.alpha.example", "127.0.0.1", "127.0.0.2")
    set_webhook(world.a.org, f"http://hooks.alpha.example:{port}/alerts?key=secret-a")
    open_an_incident(world, clock)

    assert set(run_alert_jobs().values()) == {"sent"}
    [(host, path, _)] = server.received
    assert host == f"hooks.alpha.example:{port}" and path == "/alerts?key=secret-a"
    assert dns.lookups == ["hooks.alpha.example"], "resolved once, for the check"


def make_certificates(tmp_path, hostname):
    """A CA file and a server certificate for `hostname` signed by it, as PEM paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, issuer, key, signing_key, extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Test CA", "Test CA", ca_key, ca_key, [(x509.BasicConstraints(ca=True, path_length=None), True)])
    leaf = certificate(
        hostname,
        "Test CA",
        server_key,
        ca_key,
        [
            (x509.SubjectAlternativeName([x509.DNSName(hostname)]), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
        ],
    )
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(ca_path), str(cert_path), str(key_path)


@pytest.mark.parametrize(("certified_for", "accepted"), [("hooks.alpha.example", True), ("other.example", False)])
def test_tls_is_verified_for_the_host_name_while_connecting_to_the_address(
    tmp_path, dns, receiver, certified_for, accepted
):
    server, thread = receiver
    ca_file, cert_file, key_file = make_certificates(tmp_path, certified_for)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread.start()
    dns.answer("hooks.alpha.example", "127.0.0.1")
    url = f"https://hooks.alpha.example:{server.server_address[1]}/alerts"

    target = webhook_target.check(url, allow_private=True)
    assert target.address == "127.0.0.1"
    send = lambda: webhook_target.post(target, json={"x": 1}, headers={}, timeout=(5, 10), verify=ca_file)  # noqa: E731
    if accepted:
        assert send().status_code == 204
        assert [host for host, _, _ in server.received] == [f"hooks.alpha.example:{server.server_address[1]}"]
    else:
        with pytest.raises(requests.exceptions.SSLError, match="hooks.alpha.example"):
            send()
        assert server.received == []
