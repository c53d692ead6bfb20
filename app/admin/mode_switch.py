"""Switching an integration's connection method: what it undoes is shown first, then done in one transaction.

Calendar links, their subscriptions and the stored tokens belong to the method that made
them: an application integration has no `me`, and a delegated one has no rooms. So a
switch disconnects. The deletion of the subscriptions at Microsoft is queued, authorised
the way they were made (`unsubscribe_all` records the method); the calendar links are
removed while their bookings stay; stored tokens go, except those the deletion job still
needs, which it drops once it has run; the integration is no longer connected.
"""

from dataclasses import dataclass

from app.auth import audit_log
from app.extensions import db
from app.models import AccountHandover, CalendarLink
from app.models.account_handover import HANDOVER_OFFERED
from app.models.integration import CONNECTION_NOT_CONNECTED
from app.subscriptions.jobs import unsubscribe_all


@dataclass(frozen=True)
class SwitchPlan:
    """What switching *integration*'s method would undo."""

    calendars: int
    subscriptions: int
    has_tokens: bool
    connected: bool

    @property
    def undoes_anything(self):
        return bool(self.calendars or self.subscriptions or self.has_tokens or self.connected)


def plan_switch(integration):
    links = _links_of(integration)
    return SwitchPlan(
        calendars=len(links),
        subscriptions=sum(1 for link in links if link.subscription_id),
        has_tokens=integration.token is not None,
        connected=integration.connection_state != CONNECTION_NOT_CONNECTED,
    )


def switch_needs_confirmation(integration, new_mode):
    """Whether saving *new_mode* would undo anything, so the admin must confirm it first."""
    return new_mode != integration.auth_mode and plan_switch(integration).undoes_anything


def disconnect_for_switch(integration):
    """Undo what the current method set up (see the module); return the :class:`SwitchPlan` carried out.

    Call before the new settings are applied, in the same transaction; the caller commits
    and then forgets the process's app-only token.
    """
    plan = plan_switch(integration)
    queued = unsubscribe_all(integration)
    for link in _links_of(integration):
        db.session.delete(link)
    if not queued:
        integration.token = None  # delete-orphan removes the stored row
    # A sign-in offered to take over the calendar means nothing once the calendar is gone.
    db.session.execute(
        db.delete(AccountHandover).where(
            AccountHandover.integration_id == integration.id, AccountHandover.purpose == HANDOVER_OFFERED
        )
    )
    integration.connection_state = CONNECTION_NOT_CONNECTED
    integration.connection_error = None
    integration.connected_account = None
    integration.connected_name = None
    audit_log.record(integration, audit_log.DISCONNECTED, _audit_detail(integration, plan, queued))
    return plan


def _audit_detail(integration, plan, queued):
    detail = f"Switching from the {integration.auth_mode} method: {plan.calendars} calendar link(s) removed"
    if queued:
        detail += f", deleting {queued} subscription(s) at Microsoft is queued"
    return detail + "; their bookings stay."


def _links_of(integration):
    return db.session.scalars(db.select(CalendarLink).where(CalendarLink.integration_id == integration.id)).all()
