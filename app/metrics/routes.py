"""GET /metrics for Prometheus: allowed with the right token or from the configured networks."""

import hmac
import ipaddress
import os

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from app.metrics.collector import DatabaseCollector

bp = Blueprint("metrics", __name__)


def init_app(app):
    """Serve /metrics; refuse to start with a METRICS_ALLOW that is not a list of networks."""
    try:
        parse_networks(app.config.get("METRICS_ALLOW") or "")
    except ValueError as error:
        raise ValueError(f"METRICS_ALLOW: {error}") from None
    app.register_blueprint(bp)


@bp.route("/metrics")
def metrics():
    refusal = _refusal()
    if refusal is not None:
        return refusal
    return Response(generate_latest(_Scrape()), mimetype=CONTENT_TYPE_LATEST)


class _Scrape:
    """What one scrape reports: the counters of every process, then the database gauges."""

    def collect(self):
        yield from _process_registry().collect()
        yield from DatabaseCollector().collect()


def _process_registry():
    # Under gunicorn every worker writes its counters to files in this directory; a fresh
    # registry adds them up. Without it (flask run, tests) they live in this process.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _refusal():
    """None when the request may scrape; else the 401 or 403 answer."""
    expected = current_app.config.get("METRICS_TOKEN")
    offered = _offered_token()
    if offered is not None:
        if expected and hmac.compare_digest(offered.encode(), expected.encode()):
            return None
        return _unauthorised("The metrics token is not valid.")
    if _from_allowed_network(request.remote_addr, current_app.config.get("METRICS_ALLOW", "")):
        return None
    if expected:
        return _unauthorised("A metrics token is required.")
    return Response("Metrics are not served to this address.\n", status=403, mimetype="text/plain")


def _offered_token():
    # The header only: access logs keep query strings, so a token there would be written down.
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _unauthorised(reason):
    return Response(
        reason + "\n", status=401, mimetype="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
    )


def parse_networks(setting):
    """METRICS_ALLOW as networks: CIDRs or single addresses, separated by commas or spaces."""
    return [ipaddress.ip_network(part, strict=False) for part in setting.replace(",", " ").split()]


def _from_allowed_network(address, setting):
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if getattr(ip, "ipv4_mapped", None) is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in parse_networks(setting or ""))
