"""What support staff see first: everything across the installation that someone has to act on.

Each finding carries the page where it is fixed, so the landing page is a list of links.
"""

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from app.alerts.incidents import open_incidents_query
from app.extensions import db
from app.models import CalendarLink, Integration
from app.models.calendar_link import SYNC_ERROR
from app.models.integration import CONNECTION_NEEDS_RECONNECT
from app.sync.conflicts import open_conflict_counts

LIMIT = 100


@dataclass
class Attention:
    reconnect: list
    failing_rooms: list
    incidents: list
    conflicts: list

    @property
    def empty(self):
        return not (self.reconnect or self.failing_rooms or self.incidents or self.conflicts)


def needs_attention(user):
    """Everything `user` (support: the whole installation) must look at, most urgent kinds first."""
    return Attention(
        reconnect=integrations_needing_reconnect(),
        failing_rooms=failing_rooms(),
        incidents=db.session.scalars(open_incidents_query(visible_to=user).limit(LIMIT)).all(),
        conflicts=conflicted_integrations(),
    )


def integrations_needing_reconnect():
    return db.session.scalars(
        select(Integration)
        .where(Integration.connection_state == CONNECTION_NEEDS_RECONNECT)
        .options(selectinload(Integration.organisation))
        .order_by(Integration.organisation_id, Integration.name)
        .limit(LIMIT)
    ).all()


def failing_rooms():
    """Enabled calendar links whose last sync failed or whose subscription could not be kept."""
    return db.session.scalars(
        select(CalendarLink)
        .join(Integration, CalendarLink.integration_id == Integration.id)
        .where(
            CalendarLink.enabled.is_(True),
            or_(CalendarLink.last_sync_status == SYNC_ERROR, CalendarLink.subscription_error.is_not(None)),
        )
        .options(selectinload(CalendarLink.integration).selectinload(Integration.organisation))
        .order_by(CalendarLink.failing_since.asc().nulls_last(), CalendarLink.id)
        .limit(LIMIT)
    ).all()


def conflicted_integrations():
    """[(integration, open conflicts)] for integrations with Outlook appointments refused for a clash."""
    counts = open_conflict_counts()
    if not counts:
        return []
    integrations = db.session.scalars(
        select(Integration).where(Integration.id.in_(counts)).options(selectinload(Integration.organisation))
    ).all()
    return [(integration, counts[integration.id]) for integration in integrations if counts[integration.id]]
