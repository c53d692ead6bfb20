"""Building blocks for alert tests: running the evaluator and the send_alert jobs."""

import ipaddress
import socket

from sqlalchemy import select

from app.alerts import delivery
from app.extensions import db
from app.jobs import handlers, queue
from app.models import Incident, Job, Organisation
from app.models.job import JOB_QUEUED

HOOK_A = "https://hooks.alpha.example/alerts?key=secret-a"
HOOK_B = "https://hooks.beta.example/alerts"


def set_webhook(organisation_id, url):
    db.session.get(Organisation, organisation_id).alert_webhook_url = url
    db.session.commit()


def alert_jobs():
    """Keys of the send_alert jobs waiting to run, oldest first."""
    rows = db.session.scalars(
        select(Job).where(Job.kind == delivery.SEND_ALERT, Job.state == JOB_QUEUED).order_by(Job.id)
    ).all()
    return [job.key for job in rows]


def open_incidents():
    return db.session.scalars(select(Incident).where(Incident.resolved_at.is_(None)).order_by(Incident.id)).all()


def all_incidents():
    return db.session.scalars(select(Incident).order_by(Incident.id)).all()


def only_open(kind):
    [incident] = [incident for incident in open_incidents() if incident.kind == kind]
    return incident


def run_alert_jobs(now=None):
    """Run every due send_alert job as the job pool would; return their outcomes by key."""
    handlers.load_handlers()
    outcomes = {}
    while True:
        job = queue.claim("test-worker", [delivery.SEND_ALERT], now=now)
        if job is None:
            return outcomes
        try:
            handlers.handler_for(job.kind)(job.key, job.payload)
        except Exception as error:  # noqa: BLE001 - the queue decides, as in the runner
            outcomes[job.key] = queue.fail(job, error, now=now)
        else:
            queue.complete(job)
            outcomes[job.key] = "sent"


# -- name resolution -------------------------------------------------------------------

# Globally routable, so the webhook checks let it through; tests never connect to it.
PUBLIC_ADDRESS = "93.184.215.14"


class FakeDns:
    """Stands in for socket.getaddrinfo: names answer from a table, IP literals as themselves.

    Every name lookup is recorded, so a test can tell how often a host name was resolved.
    An unknown name fails the way the real resolver does, so no test reaches real DNS.
    """

    def __init__(self):
        self.answers = {
            "hooks.alpha.example": [PUBLIC_ADDRESS],
            "hooks.beta.example": [PUBLIC_ADDRESS],
            "hooks.gamma.example": [PUBLIC_ADDRESS],
        }
        self.lookups = []
        self.later_answers = {}

    def answer(self, name, *addresses):
        self.answers[name] = list(addresses)

    def rebind(self, name, first, later):
        """`name` answers `first` once and `later` from then on, as a rebinding name server does."""
        self.answer(name, first)
        self.later_answers[name] = [later]

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        host = host.decode() if isinstance(host, bytes) else host
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            self.lookups.append(host)
            if host not in self.answers:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = self.answers[host]
            if host in self.later_answers:
                self.answers[host] = self.later_answers.pop(host)
        port = int(port or 0)
        return [_address_info(address, port) for address in addresses]


def _address_info(address, port):
    if ipaddress.ip_address(address).version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))


def install_fake_dns(monkeypatch):
    dns = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns
