"""A delegated integration's object changed: its own calendar books the new object from now on.

Appointments not linked yet become bookings of the new object, and the portal's bookings
of the new object go to Outlook. Bookings already linked to the calendar's appointments
stay on the former object and stay linked: Outlook changes keep updating or cancelling
them, and their own changes keep reaching Outlook (each one's event remembers the object
it was written for, `OutboundEvent.object_id`). Other bookings of the former object no
longer go to Outlook. Room links of application integrations behave the same way when
their object changes in the room table.
"""

from dataclasses import dataclass

from app.extensions import db
from app.models import BookableObject, Booking, CalendarLink, OutboundEvent
from app.models.calendar_link import MAILBOX_ME
from app.sync.queries import event_id_column


@dataclass(frozen=True)
class ObjectChange:
    """The own calendar moved from one object to another; `kept` bookings stay linked on the former one."""

    former_object: str
    new_object: str
    kept: int

    def describe(self):
        return (
            f"the own calendar books {self.new_object} from now on; "
            f"{self.kept} booking(s) linked to its appointments stay on {self.former_object}"
        )

    def sentence(self):
        return (
            f"New appointments of the calendar book {self.new_object} from now on; "
            f"the {self.kept} booking(s) already linked to its appointments stay on {self.former_object} "
            "and stay in sync."
        )


def follow_object(integration):
    """Point the `me` link at the integration's object; return an :class:`ObjectChange`, or None if it already was.

    Joins the caller's transaction, in which the settings change too.
    """
    link = db.session.scalar(
        db.select(CalendarLink).where(CalendarLink.integration_id == integration.id, CalendarLink.mailbox == MAILBOX_ME)
    )
    if link is None or integration.object_id is None or link.object_id == integration.object_id:
        return None
    former = link.object
    new_object = db.session.get(BookableObject, integration.object_id)
    kept = _keep_linked_bookings(integration, former.id)
    link.object_id = new_object.id
    link.object = new_object
    return ObjectChange(former.name, new_object.name, kept)


def _keep_linked_bookings(integration, former_object_id):
    """Note, for each booking of the former object linked to an appointment, that its event belongs to that object."""
    event_id = event_id_column(integration.ires_field)
    booking_ids = db.session.scalars(
        db.select(Booking.id).where(
            Booking.organisation_id == integration.organisation_id,
            Booking.object_id == former_object_id,
            event_id.is_not(None),
        )
    ).all()
    states = {
        state.booking_id: state
        for state in db.session.scalars(
            db.select(OutboundEvent).where(
                OutboundEvent.integration_id == integration.id, OutboundEvent.booking_id.in_(booking_ids)
            )
        )
    }
    for booking_id in booking_ids:
        state = states.get(booking_id)
        if state is None:
            db.session.add(
                OutboundEvent(booking_id=booking_id, integration_id=integration.id, object_id=former_object_id)
            )
        else:
            state.object_id = former_object_id
    return len(booking_ids)
