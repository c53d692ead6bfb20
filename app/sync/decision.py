"""What one Outlook event means for the bookings: the inbound rules of the design, pure.

`decide` reads an `IncomingEvent`, the link and the integration's settings, and asks
`lookups` for the little it must know about stored bookings and customers. It returns a
`Decision` and changes nothing; the sync engine hands the decision to
`writes.SyncWrites.apply`, which carries it out.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from app.models.booking import CHANNEL_OUTLOOK

CREATE = "create"
UPDATE = "update"
CANCEL = "cancel"
SKIP = "skip"
REFUSE = "refuse"
VERIFY_REMOVAL = "verify_removal"

# The reason of a skip that changes nothing; a sync sums these up in one log line.
UNCHANGED = "Unchanged."
# How the refusal of a new appointment that fails the booking checks (an overlap) begins.
NOT_BOOKED = "Not booked: "


@dataclass(frozen=True)
class Settings:
    """The integration settings the inbound rules read."""

    ires_field: str
    allow_booking_update: bool = True
    ignore_validation_errors: bool = False
    cancel_status_id: int | None = None
    lock_status_ids: frozenset = frozenset()
    new_booking_status_id: int | None = None
    status_with_customer_id: int | None = None

    @classmethod
    def of(cls, integration):
        return cls(
            ires_field=integration.ires_field,
            allow_booking_update=integration.allow_booking_update,
            ignore_validation_errors=integration.ignore_validation_errors,
            cancel_status_id=integration.cancel_status_id,
            lock_status_ids=frozenset(s.id for s in integration.lock_statuses),
            new_booking_status_id=integration.new_booking_status_id,
            status_with_customer_id=integration.status_with_customer_id,
        )


@dataclass(frozen=True)
class LinkContext:
    organisation_id: int
    object_id: int


@dataclass(frozen=True)
class StoredBooking:
    """What the rules need to know of a booking already in i-Reserve."""

    id: int
    status_id: int
    status_name: str
    start_at: datetime
    end_at: datetime
    channel: str
    remark: str
    event_id: str | None  # the event it is linked to through the `ires_field`
    # None: the link's object. A booking linked before the calendar's object changed stays on its own.
    object_id: int | None = None


class Lookups(Protocol):
    def booking_for_event(self, event_id: str) -> StoredBooking | None: ...

    def booking_by_id(self, booking_id: int) -> StoredBooking | None:
        """A booking of the link's organisation, or None."""

    def customer_for_email(self, email: str) -> int | None: ...

    def validation_errors(
        self, *, booking_id: int | None, object_id: int, status_id: int, start_at: datetime, end_at: datetime
    ) -> list[str]: ...


@dataclass(frozen=True)
class Decision:
    action: str
    event_id: str
    reason: str
    booking_id: int | None = None
    changes: dict = field(default_factory=dict)
    link_event: bool = False  # store the event id in the booking's ires_field
    unlink_event: bool = False


def decide(event, link, settings, lookups, *, removal_confirmed=False):
    """Decide create, update, cancel, skip or refuse for one event.

    A removal is only acted on once `removal_confirmed` says the event is really gone:
    Graph also reports events that moved out of the window as removed. Until then the
    answer is VERIFY_REMOVAL, and the caller looks the event up.
    """
    if event.series_master:
        return Decision(SKIP, event.id, "Series master: its occurrences are synced one by one.")
    booking, matched_by_subject = _match(event, lookups)
    if event.removed or event.cancelled:
        if booking is None:
            what = "Removal" if event.removed else "Cancellation"
            return Decision(SKIP, event.id, f"{what} of an appointment that has no booking.")
        if event.removed and not removal_confirmed:
            return Decision(VERIFY_REMOVAL, event.id, "Graph reported the event removed.", booking.id)
        how = "deleted" if event.removed else "cancelled"
        why = f"The appointment was {how} in Outlook."
        return _cancel(event, booking, settings, why)
    if event.end_at <= event.start_at:
        return Decision(
            REFUSE,
            event.id,
            "The appointment ends when it starts; a booking needs a duration.",
            booking.id if booking else None,
            link_event=bool(booking and matched_by_subject),
        )
    if booking is None:
        return _create(event, link, settings, lookups)
    return _update(event, link, booking, settings, lookups, matched_by_subject)


def _match(event, lookups):
    """The stored event id first; the `[booking id]` suffix only for a booking not linked elsewhere."""
    booking = lookups.booking_for_event(event.id)
    if booking is not None:
        return booking, False
    if event.removed or event.booking_id_in_subject is None:
        return None, False
    candidate = lookups.booking_by_id(event.booking_id_in_subject)
    if candidate is not None and candidate.event_id in (None, event.id):
        return candidate, True
    return None, False


def _cancel(event, booking, settings, why):
    if booking.status_id in settings.lock_status_ids:
        return Decision(
            SKIP, event.id, f"{why} Not cancelled: status {booking.status_name} is a lock status.", booking.id
        )
    if settings.cancel_status_id is None:
        return Decision(REFUSE, event.id, f"{why} No cancel status is configured.", booking.id)
    return Decision(
        CANCEL,
        event.id,
        why,
        booking.id,
        changes={"status_id": settings.cancel_status_id},
        unlink_event=True,
    )


def _create(event, link, settings, lookups):
    customer_id = lookups.customer_for_email(event.organiser_email) if event.organiser_email else None
    status_id = settings.new_booking_status_id
    if customer_id is not None and settings.status_with_customer_id is not None:
        status_id = settings.status_with_customer_id
    if status_id is None:
        return Decision(REFUSE, event.id, "No status for new bookings is configured.")
    changes = {
        "object_id": link.object_id,
        "status_id": status_id,
        "customer_id": customer_id,
        "start_at": event.start_at,
        "end_at": event.end_at,
        "remark": event.remark,
        "channel": CHANNEL_OUTLOOK,
    }
    errors = lookups.validation_errors(
        booking_id=None, object_id=link.object_id, status_id=status_id, start_at=event.start_at, end_at=event.end_at
    )
    reason = "New appointment in Outlook." + (" Organiser is a known customer." if customer_id else "")
    if errors:
        if not settings.ignore_validation_errors:
            return Decision(REFUSE, event.id, NOT_BOOKED + " ".join(errors))
        reason += " Booked despite: " + " ".join(errors)
    return Decision(CREATE, event.id, reason, changes=changes, link_event=True)


def _update(event, link, booking, settings, lookups, matched_by_subject):
    follows_outlook = booking.channel == CHANNEL_OUTLOOK
    link_needed = booking.event_id != event.id
    linked_note = " Linked through the booking id in the subject." if matched_by_subject else ""
    times_changed = (booking.start_at, booking.end_at) != (event.start_at, event.end_at)
    changes = {}
    if follows_outlook and booking.remark != event.remark:
        changes["remark"] = event.remark
    if times_changed and not (follows_outlook or settings.allow_booking_update):
        reason = "Outlook changed the time, but booking updates are switched off." + linked_note
        if link_needed:
            return Decision(UPDATE, event.id, reason, booking.id, link_event=True)
        return Decision(SKIP, event.id, reason, booking.id)
    reason = "Outlook changed the time." if times_changed else "Outlook changed the text."
    if times_changed:
        changes.update(start_at=event.start_at, end_at=event.end_at)
        errors = lookups.validation_errors(
            booking_id=booking.id,
            object_id=booking.object_id or link.object_id,
            status_id=booking.status_id,
            start_at=event.start_at,
            end_at=event.end_at,
        )
        if errors:
            if not (follows_outlook or settings.ignore_validation_errors):
                return Decision(
                    REFUSE,
                    event.id,
                    "Time change not applied: " + " ".join(errors) + linked_note,
                    booking.id,
                    link_event=link_needed,
                )
            reason += " Applied despite: " + " ".join(errors)
    if not changes:
        if link_needed:
            reason = "Linked; nothing else changed." + linked_note
            return Decision(UPDATE, event.id, reason, booking.id, link_event=True)
        return Decision(SKIP, event.id, UNCHANGED, booking.id)
    return Decision(UPDATE, event.id, reason + linked_note, booking.id, changes=changes, link_event=link_needed)
