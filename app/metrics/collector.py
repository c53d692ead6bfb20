"""Gauges read from the database when Prometheus scrapes, so every process reports the same truth.

Nothing here is pushed or cached: a scrape runs a handful of small aggregate queries.
"""

import logging
import math
from datetime import UTC

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from app import clock
from app.alerts import rules
from app.alerts.incidents import open_counts_by_kind
from app.extensions import db
from app.jobs import queue
from app.models import CalendarLink, Integration, OAuthToken
from app.models.calendar_link import SYNC_ERROR
from app.models.incident import SEVERITY_CRITICAL, SEVERITY_WARNING
from app.models.integration import (
    AUTH_DELEGATED,
    CONNECTION_CONNECTED,
    CONNECTION_NEEDS_RECONNECT,
    CONNECTION_NOT_CONNECTED,
)
from app.scheduler import lease

log = logging.getLogger(__name__)


class DatabaseCollector:
    """A `prometheus_client` collector; call `collect` inside an app context."""

    def collect(self):
        try:
            families = list(self._families())
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("Metrics: the database could not be read")
            families = []
            up = 0
        else:
            up = 1
        yield GaugeMetricFamily("ireserve_database_up", "Whether the scrape could read the database.", value=up)
        yield from families

    def _families(self):
        now = clock.utcnow()

        jobs = GaugeMetricFamily(
            "ireserve_jobs",
            "Background jobs by situation: due, waiting (for a retry or later run), running, failed (parked).",
            labels=["state"],
        )
        for state, number in queue.state_counts(now=now).items():
            jobs.add_metric([state], number)
        yield jobs
        oldest = queue.oldest_queued_age(now=now)
        yield GaugeMetricFamily(
            "ireserve_jobs_oldest_due_age_seconds",
            "How long the longest-waiting due job has been due (0 when none is due).",
            value=oldest.total_seconds() if oldest is not None else 0,
        )

        integrations = GaugeMetricFamily("ireserve_integrations", "Integrations by connection state.", labels=["state"])
        states = dict.fromkeys((CONNECTION_CONNECTED, CONNECTION_NEEDS_RECONNECT, CONNECTION_NOT_CONNECTED), 0)
        rows = db.session.execute(
            select(Integration.connection_state, func.count()).group_by(Integration.connection_state)
        )
        states.update({state: number for state, number in rows})
        for state, number in states.items():
            integrations.add_metric([state], number)
        yield integrations

        active = (
            select(CalendarLink)
            .join(Integration, CalendarLink.integration_id == Integration.id)
            .where(CalendarLink.enabled.is_(True), Integration.connection_state == CONNECTION_CONNECTED)
            .subquery()
        )
        failing = db.session.scalar(
            select(func.count()).select_from(active).where(active.c.last_sync_status == SYNC_ERROR)
        )
        yield GaugeMetricFamily(
            "ireserve_calendar_links_failing",
            "Enabled calendars of connected integrations whose last sync failed.",
            value=failing,
        )
        unsubscribed = db.session.scalar(
            select(func.count())
            .select_from(active)
            .where((active.c.subscription_id.is_(None)) | (active.c.subscription_expires_at <= now))
        )
        yield GaugeMetricFamily(
            "ireserve_calendar_links_without_subscription",
            "Enabled calendars of connected integrations without a live change-notification subscription.",
            value=unsubscribed,
        )
        earliest = db.session.scalar(
            select(func.min(active.c.subscription_expires_at)).where(active.c.subscription_id.is_not(None))
        )
        if earliest is not None:
            earliest = _as_utc(earliest)
            yield GaugeMetricFamily(
                "ireserve_subscription_earliest_expiry_seconds",
                "Seconds until the first live subscription expires (renewal keeps it above a day).",
                value=(earliest - now).total_seconds(),
            )
        token_expiry = db.session.scalar(
            select(func.min(OAuthToken.expires_at))
            .join(Integration, OAuthToken.integration_id == Integration.id)
            .where(Integration.connection_state == CONNECTION_CONNECTED, Integration.auth_mode == AUTH_DELEGATED)
        )
        if token_expiry is not None:
            yield GaugeMetricFamily(
                "ireserve_token_earliest_expiry_seconds",
                "Seconds until the first stored delegated access token expires; negative between uses is "
                "normal (it is renewed when next needed).",
                value=(_as_utc(token_expiry) - now).total_seconds(),
            )

        row = lease.current()
        age = rules.heartbeat_age()
        yield GaugeMetricFamily(
            "ireserve_scheduler_heartbeat_age_seconds",
            "Seconds since the scheduler last renewed its lease (+Inf if it never ran).",
            value=age.total_seconds() if age is not None else math.inf,
        )
        yield GaugeMetricFamily(
            "ireserve_scheduler_lease_held",
            "1 while a scheduler holds an unexpired lease.",
            value=1 if lease.is_held(row) else 0,
        )

        incidents = GaugeMetricFamily(
            "ireserve_incidents_open", "Open incidents by kind and severity.", labels=["kind", "severity"]
        )
        counts = {
            (kind, severity): 0 for kind in rules.KIND_LABELS for severity in (SEVERITY_CRITICAL, SEVERITY_WARNING)
        }
        counts.update(open_counts_by_kind())
        for (kind, severity), number in sorted(counts.items()):
            incidents.add_metric([kind, severity], number)
        yield incidents


def _as_utc(value):
    # An aggregate over a subquery may come back without the column type's UTC zone.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
