from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from app.database.column_types import UTCDateTime
from app.extensions import db

#: The counted things, each a column of `SyncHourly`.
COUNTERS = ("syncs_ok", "syncs_failed", "notifications", "bookings_created", "bookings_updated", "bookings_cancelled")


class SyncHourly(db.Model):
    """What happened to one integration in one UTC hour: sync runs, notifications, bookings written.

    Rows are added to by `app.metrics.hourly` in the transaction of the work they count;
    the health chart reads them instead of scanning the sync log.
    """

    __tablename__ = "sync_hourly"

    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    # The start of the hour, in UTC.
    hour = mapped_column(UTCDateTime, primary_key=True)
    syncs_ok: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    syncs_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    notifications: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bookings_created: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bookings_updated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bookings_cancelled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
