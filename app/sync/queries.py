"""The sync's lookups of bookings by linked event id, shaped so an index answers them."""

from sqlalchemy import String, true

from app.database.bulk import json_rows, on_postgresql
from app.extensions import db
from app.models import Booking
from app.models.booking import EXTRA_FIELD_NAME, INDEXED_EXTRA_FIELD, ExtraText


def event_id_column(ires_field):
    """The booking's linked event id in SQL, spelled so the event id index can serve it."""
    if EXTRA_FIELD_NAME.fullmatch(ires_field):
        return ExtraText(Booking.extra, ires_field)
    return Booking.extra[ires_field].as_string()


def linked_booking_ids(organisation_id, ires_field, event_ids):
    """Ids of the organisation's bookings linked to any of `event_ids`."""
    linked = event_id_column(ires_field)
    if ires_field != INDEXED_EXTRA_FIELD or not on_postgresql():
        # SQLite probes the index once per listed id by itself; a field without an index
        # is best read in one pass over the organisation's bookings.
        query = db.select(Booking.id).where(Booking.organisation_id == organisation_id, linked.in_(event_ids))
        return db.session.scalars(query).all()
    # Until statistics catch up with a first sync, PostgreSQL reads `IN (...)` as
    # unselective and scans the organisation's bookings per page; one index probe per
    # event id (a lateral join the planner may not flatten) cannot go that way.
    wanted = json_rows("wanted", [("event_id", String())])
    found = (
        db.select(Booking.id)
        .where(Booking.organisation_id == organisation_id, linked == wanted.c.event_id)
        .offset(0)
        .lateral("found")
    )
    query = db.select(found.c.id).select_from(wanted).join(found, true())
    return db.session.scalars(query, {"wanted": [{"event_id": event_id} for event_id in event_ids]}).all()


def linked_event_ids(organisation_id, ires_field, event_ids):
    """Those of `event_ids` that a booking of the organisation is linked to."""
    linked = event_id_column(ires_field)
    query = db.select(linked).where(Booking.organisation_id == organisation_id, linked.in_(list(event_ids)))
    return set(db.session.scalars(query))
