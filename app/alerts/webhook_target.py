"""Where an alert webhook may point, and sending to exactly the address that was checked.

Any organisation admin can set an alert webhook URL and the server POSTs to it, so the URL
must not become a way to reach the installation's own network: the loopback interface,
private networks, or the cloud metadata service on a link-local address. `check` resolves
the URL's host name once and refuses it when *any* address it resolves to lies outside the
public internet (addresses that embed an IPv4 address, such as ``::ffff:127.0.0.1`` or a
6to4 address, are judged by that IPv4 address). The organisation form calls it on save and
delivery calls it again before every send.

Checking and then letting the HTTP library resolve the name again would leave a gap: a
name server can answer with a public address to the check and a private one a moment later
(DNS rebinding). `post` therefore connects to the address the check approved, through a
requests transport adapter that swaps the URL's host for that address only where urllib3
opens the socket. Everything else still speaks of the host name: the Host header, the TLS
server name (SNI), and certificate verification, which urllib3 performs against the
``server_hostname`` it is given rather than the address it connected to. A certificate
that is not valid for the host name therefore still fails, exactly as without pinning.

The installation's HTTP(S)_PROXY settings are not used for webhooks: a proxy would resolve
the name itself and undo the check. Redirects are not followed (the next hop was never
checked), and the answer's body is never read: the status line says all delivery needs.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

ALLOW_PRIVATE_SETTING = "ALERT_WEBHOOK_ALLOW_PRIVATE"
SCHEMES = ("https", "http")

# DNS64 writes an IPv4-only host as 64:ff9b::a.b.c.d; the IPv4 address is the real target.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")

# What an address is, as the admin is told; never the address itself, which would map the
# installation's network for whoever typed the name.
LOOPBACK = "a loopback address"
PRIVATE = "a private network address"
LINK_LOCAL = "a link-local address (where cloud metadata services live)"
MULTICAST = "a multicast address"
UNSPECIFIED = "an unspecified address (0.0.0.0 or ::)"
NOT_PUBLIC = "an address outside the public internet"
# Loopback and private networks hold real services an installation may mean to call
# (a local alert relay); the rest never hold a webhook receiver, so no setting opens them.
ALLOWED_WHEN_PRIVATE_ALLOWED = (LOOPBACK, PRIVATE)


class RefusedTarget(Exception):
    """The URL may not be used as an alert webhook; the message is safe to show and to keep.

    `kind` says what its host resolves to (LOOPBACK, PRIVATE, ...) when that is the reason.
    """

    def __init__(self, message, kind=None):
        super().__init__(message)
        self.kind = kind


class UnresolvableHost(RefusedTarget):
    """The host name has no address (today): a typo, or a name server that is down."""


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL whose host resolved, at check time, to `address`, which was allowed."""

    url: str
    hostname: str
    address: str


def check(url, *, allow_private=False):
    """The WebhookTarget for `url`, or RefusedTarget (UnresolvableHost) saying why not.

    Every address the host name resolves to must be public (or loopback or private when
    `allow_private`); the first one is the address `post` will connect to.
    """
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedTarget("The port in this address is not a number between 0 and 65535.") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise RefusedTarget("Enter a full http:// or https:// address.")
    addresses = resolve(parts.hostname, port)
    for address in addresses:
        kind = address_kind(address)
        if kind is None or (allow_private and kind in ALLOWED_WHEN_PRIVATE_ALLOWED):
            continue
        raise RefusedTarget(refusal_message(kind), kind)
    return WebhookTarget(url=url, hostname=parts.hostname, address=addresses[0])


def resolve(hostname, port):
    """The addresses `hostname` resolves to, in the order the system resolver prefers them."""
    try:
        return [str(ipaddress.ip_address(hostname))]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG)
    except (socket.gaierror, UnicodeError):
        raise UnresolvableHost("The host name in this address could not be resolved.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in answers))
    if not addresses:
        raise UnresolvableHost("The host name in this address could not be resolved.")
    return addresses


def address_kind(address):
    """None for a public internet address, otherwise what kind of address `address` is."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        ip = _embedded_ipv4(ip) or ip
    if ip.is_unspecified:
        return UNSPECIFIED
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_link_local:
        return LINK_LOCAL
    if ip.is_multicast:
        return MULTICAST
    if ip.is_reserved:
        return NOT_PUBLIC
    if ip.is_private or getattr(ip, "is_site_local", False) or ip in ipaddress.ip_network("100.64.0.0/10"):
        return PRIVATE
    if not ip.is_global:
        return NOT_PUBLIC
    return None


def _embedded_ipv4(ip):
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_message(kind, subject="This address"):
    message = f"{subject} resolves to {kind}, which alert webhooks may not reach"
    if kind in ALLOWED_WHEN_PRIVATE_ALLOWED:
        return f"{message}; set {ALLOW_PRIVATE_SETTING}=true on the installation to allow it."
    return f"{message}."


def post(target, *, json, headers, timeout, verify=True):
    """POST `json` to `target`, connecting to its checked address; the answer comes back unread.

    The response is closed before it is returned: status and headers are there, the body
    was never downloaded, however large the receiver makes it.
    """
    with requests.Session() as session:
        session.trust_env = False
        adapter = PinnedAddressAdapter(target.address)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        response = session.post(
            target.url,
            json=json,
            headers=headers,
            timeout=timeout,
            verify=verify,
            allow_redirects=False,
            stream=True,
        )
        response.close()
        return response


class PinnedAddressAdapter(HTTPAdapter):
    """Opens every connection to one IP address while the request keeps naming its host.

    Only the connection pool's host changes; the TLS server name, the certificate check
    and the Host header stay those of the URL.
    """

    def __init__(self, address):
        self.address = address
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        hostname = host_params["host"]
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = hostname
        return host_params, pool_kwargs

    def add_headers(self, request, **kwargs):
        # Without it urllib3 would name the pool's host, the bare address, in the Host header.
        request.headers["Host"] = urlsplit(request.url).netloc.rpartition("@")[2]
