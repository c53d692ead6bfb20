"""Signing in as another Microsoft account than the one whose calendar a delegated integration syncs.

Microsoft preselects whoever is signed in in the browser, so this happens by accident as
often as on purpose. Nothing changes until the admin decides:

- :func:`offer_switch` keeps the new account's tokens aside (an *offered*
  :class:`AccountHandover`) and the page asks "switch or keep?";
- :func:`keep_current` forgets the offer: the integration is exactly as it was;
- :func:`switch_account` makes the new account the integration's, in one commit. The old
  calendar's bookings are unlinked, never cancelled (`app.sync.calendar_reset`); the new
  calendar is subscribed and synced from scratch; bookings this product wrote into the old
  calendar are written into the new one. The old account's tokens are kept as a *retiring*
  handover for the job (:func:`run_retire_account`) that deletes its subscription and,
  when the admin chose so, the events this product created in the old calendar.

No Graph call is made in a portal request.
"""

import logging
from dataclasses import dataclass

from app import clock
from app.auth import audit_log
from app.database.booking_locks import lock_objects_for_booking
from app.extensions import db
from app.graph.client import BatchRequest
from app.graph.tokens import DisconnectTokenProvider, ReconnectRequired, graph_client_for, store_delegated_token
from app.jobs import queue
from app.jobs.handlers import handler
from app.models import AccountHandover, Booking, CalendarLink, OutboundEvent, SyncLogEntry
from app.models.account_handover import HANDOVER_OFFERED, HANDOVER_RETIRING
from app.models.calendar_link import MAILBOX_ME
from app.models.integration import AUTH_DELEGATED, CONNECTION_CONNECTED, OAuthToken
from app.outbound.push import event_path
from app.outbound.trigger import OUTBOUND_BOOKING, outbound_key
from app.subscriptions import lifecycle
from app.subscriptions.jobs import activate_link, take_over_disconnect_deletions
from app.sync.calendar_reset import forget_sync_state, linked_bookings, unlink_bookings

log = logging.getLogger(__name__)

RETIRE_ACCOUNT = "retire_account"
DELETE_OLD_EVENTS = "delete"
LEAVE_OLD_EVENTS = "leave"


class OfferGone(Exception):
    """The offer was used, expired, or is not the signed-in user's; the message says which."""


@dataclass(frozen=True)
class PushedEvent:
    """An event this product created in the old account's calendar for one booking."""

    booking: Booking
    event_id: str


@dataclass(frozen=True)
class SwitchPlan:
    """What switching would do, as the confirmation page lists it."""

    old_account: str
    new_account: str
    object_name: str
    linked: int
    pushed: list[PushedEvent]
    # Whether the old account's tokens are still stored, so its calendar can still be written.
    can_write_old_calendar: bool


def own_calendar(integration):
    return db.session.scalar(
        db.select(CalendarLink).where(CalendarLink.integration_id == integration.id, CalendarLink.mailbox == MAILBOX_ME)
    )


def account_of_calendar(integration):
    """The account whose calendar the integration synced last, or None when it never synced one."""
    link = own_calendar(integration)
    return (link.account if link is not None else None) or None


def is_switch(integration, account):
    """Whether signing in as *account* would change whose calendar *integration* syncs."""
    current = account_of_calendar(integration)
    return current is not None and current.lower() != account.lower()


def offer_switch(integration, user, answer, profile):
    """Keep the tokens of *answer* aside until *user* decides; return the offer. Commits.

    An earlier offer of this user for this integration is replaced.
    """
    db.session.execute(
        db.delete(AccountHandover).where(
            AccountHandover.integration_id == integration.id,
            AccountHandover.purpose == HANDOVER_OFFERED,
            AccountHandover.user_id == user.id,
        )
    )
    offer = AccountHandover(
        integration_id=integration.id,
        purpose=HANDOVER_OFFERED,
        user_id=user.id,
        account=profile["userPrincipalName"],
        display_name=profile.get("displayName"),
    )
    store_delegated_token(offer, answer)
    db.session.add(offer)
    db.session.commit()
    log.info("Integration %s: sign-in as another account; switch offered to user %s", integration.id, user.id)
    return offer


def offer_for(integration, offer_id, user, lifetime):
    """The offer *offer_id* of *integration*, if it is *user*'s and younger than *lifetime*.

    :raises OfferGone: otherwise; an expired offer is deleted on the way.
    """
    offer = db.session.get(AccountHandover, offer_id)
    if (
        offer is None
        or offer.purpose != HANDOVER_OFFERED
        or offer.integration_id != integration.id
        or offer.user_id != user.id
    ):
        raise OfferGone("This sign-in is no longer waiting for a decision: nothing was changed.")
    if clock.utcnow() - offer.created_at > lifetime:
        db.session.delete(offer)
        db.session.commit()
        raise OfferGone(
            f"The sign-in as {offer.account} waited longer than {lifetime.seconds // 60} minutes and was discarded: "
            "nothing was changed. Reconnect again to switch."
        )
    return offer


def plan_switch(integration, offer):
    link = own_calendar(integration)
    return SwitchPlan(
        old_account=link.account,
        new_account=offer.account,
        object_name=link.object.name,
        linked=len(linked_bookings(link, integration.ires_field)),
        pushed=_pushed_events(integration, link),
        can_write_old_calendar=integration.token is not None,
    )


def keep_current(integration, offer):
    """Forget *offer*; the integration stays as it was. Commits."""
    account = offer.account
    db.session.delete(offer)
    audit_log.record(
        integration,
        audit_log.SWITCH_DECLINED,
        f"Signed in as {account}; kept {account_of_calendar(integration)}'s calendar, nothing changed.",
    )
    db.session.commit()


def switch_account(integration, offer, old_events):
    """Make the offer's account the integration's; *old_events* says what becomes of the pushed events. Commits.

    :param old_events: :data:`DELETE_OLD_EVENTS` or :data:`LEAVE_OLD_EVENTS`.
    """
    link = own_calendar(integration)
    # A sync page of the old calendar holds this lock while it applies: it finishes before
    # the bookings are unlinked, or it sees the switch and applies nothing.
    lock_objects_for_booking(db.session, link.object_id)
    old_account, new_account = link.account, offer.account
    pushed = _pushed_events(integration, link)
    subscription_ids = take_over_disconnect_deletions(integration.id)
    if link.subscription_id:
        subscription_ids.add(link.subscription_id)
    lifecycle.forget(link)
    deletions = [(event.booking.id, event.event_id) for event in pushed] if old_events == DELETE_OLD_EVENTS else []
    _retire_old_tokens(integration, old_account, subscription_ids, deletions)

    unlinked = unlink_bookings(link, integration.ires_field)
    for event in pushed:
        _forget_pushed(integration, event.booking)
    forget_sync_state(link)
    link.account = new_account
    _take_offered_tokens(integration, offer)
    db.session.add(
        SyncLogEntry(
            organisation_id=integration.organisation_id,
            integration_id=integration.id,
            link_id=link.id,
            action="switch",
            reason=(
                f"The integration switched from {old_account}'s calendar to {new_account}'s: "
                f"{len(unlinked)} booking(s) linked to {old_account}'s appointments were unlinked and keep their "
                f"status; {new_account}'s calendar is synced from scratch."
            ),
        )
    )
    db.session.flush()
    activate_link(link.id)
    now = clock.utcnow()
    for event in pushed:
        if event.booking.end_at > now and event.booking.object_id == link.object_id:
            queue.enqueue(OUTBOUND_BOOKING, outbound_key(integration.id, event.booking.id))
    what = "deleted" if deletions else "left"
    audit_log.record(
        integration,
        audit_log.ACCOUNT_SWITCHED,
        f"From {old_account} to {new_account}; {len(unlinked)} booking(s) unlinked; "
        f"{len(pushed)} event(s) written by i-Reserve in {old_account}'s calendar {what}.",
    )
    db.session.commit()
    log.info("Integration %s switched account; %d booking(s) unlinked", integration.id, len(unlinked))
    return len(unlinked)


def _pushed_events(integration, link):
    field = integration.ires_field
    bookings = db.session.scalars(
        db.select(Booking)
        .join(OutboundEvent, OutboundEvent.booking_id == Booking.id)
        .where(OutboundEvent.integration_id == integration.id, Booking.organisation_id == integration.organisation_id)
        .order_by(Booking.start_at, Booking.id)
    ).all()
    return [PushedEvent(booking, booking.extra[field]) for booking in bookings if booking.extra.get(field)]


def _forget_pushed(integration, booking):
    # Also on a booking left on a former object of the calendar, which the unlinking above does not reach.
    booking.extra.pop(integration.ires_field, None)
    state = db.session.get(OutboundEvent, (booking.id, integration.id))
    state.snapshot, state.join_url, state.object_id = None, None, None
    state.generation += 1  # the new calendar's create is a new event, not a replay of the old one


def _retire_old_tokens(integration, old_account, subscription_ids, deletions):
    """Keep the old account's tokens for the job that cleans its calendar up, when there is anything to clean."""
    tokens = integration.token
    if tokens is None or not (subscription_ids or deletions):
        return
    retiring = AccountHandover(
        integration_id=integration.id,
        purpose=HANDOVER_RETIRING,
        account=old_account,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        scope=tokens.scope,
        expires_at=tokens.expires_at,
    )
    db.session.add(retiring)
    db.session.flush()
    queue.enqueue(
        RETIRE_ACCOUNT,
        str(retiring.id),
        payload={"subscriptions": sorted(subscription_ids), "events": [list(pair) for pair in deletions]},
    )


def _take_offered_tokens(integration, offer):
    if integration.token is None:
        integration.token = OAuthToken()
    row = integration.token
    row.access_token, row.refresh_token, row.scope, row.expires_at = (
        offer.access_token,
        offer.refresh_token,
        offer.scope,
        offer.expires_at,
    )
    integration.connected_account = offer.account
    integration.connected_name = offer.display_name
    integration.connection_state = CONNECTION_CONNECTED
    integration.connection_error = None
    db.session.delete(offer)


@handler(RETIRE_ACCOUNT)
def run_retire_account(key, payload):
    """Delete a switched-away account's subscription and chosen events with its own tokens, then drop them.

    Best effort, like a disconnect: a refused token or a refused deletion is logged and the
    subscription expires by itself within days. A transient failure fails the job with the
    tokens kept, so the retry can still authorise the deletions; 404 means gone already.
    """
    retiring = db.session.get(AccountHandover, int(key))
    if retiring is None:
        return
    integration, account = retiring.integration, retiring.account
    subscriptions = payload.get("subscriptions", [])
    events = [(int(booking_id), event_id) for booking_id, event_id in payload.get("events", [])]
    deletions = [BatchRequest(f"s{n}", "DELETE", f"/subscriptions/{sid}") for n, sid in enumerate(subscriptions)]
    deletions += [BatchRequest(f"e{n}", "DELETE", "/" + event_path(eid)) for n, (_, eid) in enumerate(events)]
    provider = DisconnectTokenProvider(integration, AUTH_DELEGATED, tokens=retiring)
    try:
        results = graph_client_for(integration, token_provider=provider).batch(deletions) if deletions else []
    except ReconnectRequired as refusal:
        log.warning("Integration %s: the switched-away calendar was not cleaned up: %s", integration.id, refusal)
        _log_cleanup(integration, None, f"{account}'s calendar was not cleaned up: {refusal}.", is_error=True)
        results = []
    failed = [result for result in results if not result.ok and result.status != 404]
    retry = [result.error for result in failed if result.error.is_transient]
    if retry:
        raise retry[0]  # the retry deletes all again; what is gone by then answers 404
    by_id = {result.id: result for result in results}
    for n, (booking_id, event_id) in enumerate(events):
        result = by_id.get(f"e{n}")
        if result is None:
            continue
        if result in failed:
            reason, is_error = f"Not removed from {account}'s calendar: {result.error}.", True
        else:
            reason, is_error = f"Removed from {account}'s calendar after the switch.", False
        _log_cleanup(integration, booking_id, reason, is_error=is_error, event_id=event_id)
    db.session.delete(retiring)
    db.session.commit()


def _log_cleanup(integration, booking_id, reason, *, is_error, event_id=None):
    if booking_id is not None and db.session.get(Booking, booking_id) is None:
        booking_id = None  # deleted since the switch; the line still names the event
    db.session.add(
        SyncLogEntry(
            organisation_id=integration.organisation_id,
            integration_id=integration.id,
            booking_id=booking_id,
            event_id=event_id,
            direction="outbound",
            action="error" if is_error else "delete",
            reason=reason,
            is_error=is_error,
        )
    )


def discard_offers(integration):
    """Forget the offered switches of *integration*, whose own account signed in. Joins the caller's transaction."""
    db.session.execute(
        db.delete(AccountHandover).where(
            AccountHandover.integration_id == integration.id, AccountHandover.purpose == HANDOVER_OFFERED
        )
    )
