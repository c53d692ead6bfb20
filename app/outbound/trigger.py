"""Which integrations must hear of a changed booking, as durable jobs; never a Graph call here."""

from app.extensions import db
from app.jobs import queue
from app.models import CalendarLink, Integration, OutboundEvent, SyncLogEntry

OUTBOUND_BOOKING = "outbound_booking"
APPLICATION_MODE_SKIP = "Not sent to Outlook: an application-mode integration only reads room calendars."


def outbound_key(integration_id, booking_id):
    return f"{integration_id}:{booking_id}"


def booking_changed(booking):
    """Queue one outbound job per delegated integration concerned; joins the caller's transaction.

    Concerned are the integrations syncing the booking's object, and any that already hold
    an Outlook event for it (the booking may have moved to another object). Coalescing
    makes several quick changes one job, which sends the booking as it is when it runs.
    """
    syncing = db.session.scalars(
        db.select(Integration)
        .join(CalendarLink, CalendarLink.integration_id == Integration.id)
        .where(
            Integration.organisation_id == booking.organisation_id,
            CalendarLink.object_id == booking.object_id,
            CalendarLink.enabled.is_(True),
        )
        .distinct()
    ).all()
    holding = db.session.scalars(
        db.select(Integration).join(OutboundEvent).where(OutboundEvent.booking_id == booking.id)
    ).all()
    for integration in {i.id: i for i in syncing + holding}.values():
        if integration.is_delegated:
            queue.enqueue(OUTBOUND_BOOKING, outbound_key(integration.id, booking.id))
        else:
            db.session.add(
                SyncLogEntry(
                    organisation_id=booking.organisation_id,
                    integration_id=integration.id,
                    booking_id=booking.id,
                    direction="outbound",
                    action="skip",
                    reason=APPLICATION_MODE_SKIP,
                )
            )
