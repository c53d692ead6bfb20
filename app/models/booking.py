"""The i-Reserve side the integration acts on: objects, customers, statuses and bookings."""

import re

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from app.clock import utcnow
from app.database.column_types import UTCDateTime
from app.extensions import db
from app.models.organisation import Organisation

CHANNEL_BACKOFFICE = "backoffice"
CHANNEL_OUTLOOK = "external/outlook"

# A new organisation starts with these; `blocks_object` says whether a booking in that
# status occupies its object (and so counts for the overlap check).
DEFAULT_STATUSES = (
    ("Option", True),
    ("Confirmed", True),
    ("Cancelled", False),
    ("Invoiced", True),
)

JSONMap = MutableDict.as_mutable(JSON().with_variant(JSONB(), "postgresql"))

# The default `ires_field`: the one field of `extra` with an index, so finding the
# bookings of a page of Outlook events stays a lookup however many bookings there are,
# and a unique one, so an event is never linked to two bookings of an organisation.
INDEXED_EXTRA_FIELD = "outlook_event_id"
EXTRA_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class ExtraText(ColumnElement):
    """One field of a JSON column as text, with the field's name written into the SQL.

    An expression index serves only queries that spell the expression the same way; a
    bound parameter for the name would hide it from the planner.
    """

    inherit_cache = True
    type = String()
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("field", InternalTraversal.dp_string)]

    def __init__(self, column, field):
        if not EXTRA_FIELD_NAME.fullmatch(field):
            raise ValueError(f"not a field name: {field!r}")
        self.column, self.field = column, field

    @property
    def _from_objects(self):
        return self.column._from_objects


@compiles(ExtraText, "postgresql")
def _extra_text_postgresql(element, compiler, **kw):
    return f"({compiler.process(element.column, **kw)} ->> '{element.field}')"


@compiles(ExtraText)
def _extra_text_sqlite(element, compiler, **kw):
    return f"json_extract({compiler.process(element.column, **kw)}, '$.{element.field}')"


class BookableObject(db.Model):
    __tablename__ = "bookable_objects"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int | None]
    active: Mapped[bool] = mapped_column(default=True)

    organisation: Mapped[Organisation] = relationship()


class Customer(db.Model):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Kept lower-case so an Outlook organiser address matches whatever case it arrives in.
    email: Mapped[str | None] = mapped_column(String(320), index=True)

    organisation: Mapped[Organisation] = relationship()


class BookingStatus(db.Model):
    __tablename__ = "booking_statuses"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    blocks_object: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)

    organisation: Mapped[Organisation] = relationship()


class Booking(db.Model):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="ends_after_start"),
        Index("ix_bookings_object_time", "object_id", "start_at", "end_at"),
        Index("ix_bookings_organisation_time", "organisation_id", "start_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(ForeignKey("bookable_objects.id", ondelete="RESTRICT"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    status_id: Mapped[int] = mapped_column(ForeignKey("booking_statuses.id", ondelete="RESTRICT"), index=True)
    start_at = mapped_column(UTCDateTime, nullable=False)
    end_at = mapped_column(UTCDateTime, nullable=False)
    remark: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(String(40), default=CHANNEL_BACKOFFICE)
    # Free fields of the booking; the integration keeps the Outlook event id here under
    # the name its `ires_field` setting gives.
    extra: Mapped[dict] = mapped_column(JSONMap, default=dict)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)

    organisation: Mapped[Organisation] = relationship()
    object: Mapped[BookableObject] = relationship()
    customer: Mapped[Customer | None] = relationship()
    status: Mapped[BookingStatus] = relationship()


# An Outlook event is linked to one booking of an organisation at most: a second sync
# run that tries to link it again fails here and reads what the first one wrote.
LINKED_EVENT_ID = ExtraText(Booking.__table__.c.extra, INDEXED_EXTRA_FIELD)
LINKED_EVENT_INDEX = "uq_bookings_outlook_event_id"
Index(
    LINKED_EVENT_INDEX,
    Booking.__table__.c.organisation_id,
    LINKED_EVENT_ID,
    unique=True,
    sqlite_where=LINKED_EVENT_ID.is_not(None),
    postgresql_where=LINKED_EVENT_ID.is_not(None),
)
