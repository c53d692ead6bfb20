"""Starting a calendar link over, when another mailbox is behind it than the one synced so far.

What was synced belongs to the old mailbox: its delta position, and the bookings linked to
its appointments. Were those bookings left linked, the new mailbox's first full round would
not return their appointments and would cancel them as "deleted in Outlook", which Graph
never said. So they are unlinked instead: they keep their status and times, and no
longer follow any calendar.
"""

from app.extensions import db
from app.models import Booking, CalendarLink, SyncSeenEvent
from app.models.calendar_link import SYNC_NEVER
from app.sync.conflicts import forget_link
from app.sync.queries import event_id_column


def forget_sync_state(link):
    """Drop the link's delta position and sync status; its next sync is a full one. Joins the caller's transaction."""
    link.delta_link = None
    link.window_start = None
    link.window_end = None
    link.last_sync_at = None
    link.last_full_sync_at = None
    link.last_sync_status = SYNC_NEVER
    link.last_sync_error = None
    link.subscription_error = None
    db.session.execute(db.delete(SyncSeenEvent).where(SyncSeenEvent.link_id == link.id))
    forget_link(link.id)


def linked_bookings(link: CalendarLink, ires_field):
    """The bookings a full round of *link* would reconcile: linked to an event, on the link's object."""
    return db.session.scalars(
        db.select(Booking)
        .where(
            Booking.organisation_id == link.integration.organisation_id,
            Booking.object_id == link.object_id,
            event_id_column(ires_field).is_not(None),
        )
        .order_by(Booking.id)
    ).all()


def unlink_bookings(link, ires_field):
    """Unlink the bookings of :func:`linked_bookings` from their events; return them. Joins the caller's transaction."""
    bookings = linked_bookings(link, ires_field)
    for booking in bookings:
        booking.extra.pop(ires_field, None)
    return bookings
