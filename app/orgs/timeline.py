"""The bookings timeline: which slots of a day or a week each booking covers, in the organisation's zone.

A window is a run of equal slots (quarter hours for a day, hours for a week) counted in
elapsed time from the window's first local midnight, so a day on which the clocks change
has 92 or 100 quarter hours and every booking still lands where the wall clock says. The
page places blocks with grid-line classes (`tl-from-N`, `tl-to-N`, `tl-slots-N`) because
the content security policy allows no inline styles; `placement_css` writes those classes.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.api.serialize import event_id_fields
from app.clock import local_to_utc
from app.extensions import db
from app.models import BookableObject, Booking, Integration
from app.models.job import JOB_FAILED, Job
from app.outbound.trigger import OUTBOUND_BOOKING
from app.sync.mapping import remark_parts

DAY, WEEK = "day", "week"
SPANS = {DAY: (1, timedelta(minutes=15)), WEEK: (7, timedelta(hours=1))}
# A week of hour slots with an hour gained is the longest window; a little room for zones
# with odd shifts. Blocks beyond it are clamped, never placed by an unstyled class.
MAX_SLOTS = 172
STATUS_COLOURS = 8


@dataclass(frozen=True)
class Window:
    span: str
    first_day: object
    days: int
    start: datetime
    end: datetime
    slot: timedelta
    slots: int

    @property
    def last_day(self):
        return self.first_day + timedelta(days=self.days - 1)

    @property
    def label(self):
        if self.span == DAY:
            return f"{_day_label(self.first_day)} {self.first_day.year}"
        return f"{_day_label(self.first_day)} – {_day_label(self.last_day)} {self.last_day.year}"

    def line_of(self, moment):
        """The grid line (1-based) at or before `moment`, kept inside the window."""
        if moment <= self.start:
            return 1
        if moment >= self.end:
            return self.slots + 1
        return min(self.slots, (moment - self.start) // self.slot) + 1

    def line_after(self, moment):
        """The grid line at or after `moment`, kept inside the window."""
        if moment >= self.end:
            return self.slots + 1
        return max(1, min(self.slots, math.ceil((moment - self.start) / self.slot))) + 1


@dataclass(frozen=True)
class Mark:
    label: str
    first_line: int
    last_line: int
    moment: datetime


@dataclass
class Block:
    booking_id: int
    first_line: int
    last_line: int
    time_text: str
    short_time: str
    status: str
    status_colour: int
    occupies: bool
    customer: str
    remark: str
    all_day: bool
    clipped_before: bool
    clipped_after: bool
    outlook_linked: bool
    outbound_failed: bool
    late: bool

    @property
    def subject(self):
        return remark_parts(self.remark)[0]

    @property
    def description(self):
        return remark_parts(self.remark)[1]

    @property
    def summary(self):
        """Everything a person hovering or focusing the block needs, as one line of text."""
        parts = [self.time_text, self.status, self.customer or "no customer"]
        if self.outlook_linked:
            parts.append("linked to Outlook")
        if self.outbound_failed:
            parts.append("writing to Outlook failed")
        if self.clipped_before:
            parts.append("continues from before")
        if self.clipped_after:
            parts.append("continues after")
        if self.remark:
            parts.append(self.remark)
        return " · ".join(parts)


@dataclass
class Row:
    object_id: int
    name: str
    blocks: list = field(default_factory=list)


@dataclass
class Timeline:
    window: Window
    marks: list
    rows: list

    @property
    def has_bookings(self):
        return any(row.blocks for row in self.rows)


def window_for(day, span, timezone_name):
    """The day, or the Monday-to-Sunday week, holding `day`, from local midnight to local midnight."""
    days, slot = SPANS[span]
    first_day = day - timedelta(days=day.weekday()) if span == WEEK else day
    start = local_midnight(first_day, timezone_name)
    end = local_midnight(first_day + timedelta(days=days), timezone_name)
    slots = max(1, min(MAX_SLOTS, math.ceil((end - start) / slot)))
    return Window(span, first_day, days, start, end, slot, slots)


def local_midnight(day, timezone_name):
    return local_to_utc(datetime.combine(day, time.min), timezone_name)


def marks_for(window, timezone_name):
    """The axis: each local hour of a day (hours the clocks repeat or skip show so), or each day of a week."""
    zone = ZoneInfo(timezone_name)
    marks = []
    if window.span == DAY:
        moment = window.start
        while moment < window.end:
            following = min(moment + timedelta(hours=1), window.end)
            label = moment.astimezone(zone).strftime("%H:%M")
            marks.append(Mark(label, window.line_of(moment), window.line_of(following), moment))
            moment = following
    else:
        for offset in range(window.days):
            day = window.first_day + timedelta(days=offset)
            start = local_midnight(day, timezone_name)
            following = local_midnight(day + timedelta(days=1), timezone_name)
            marks.append(Mark(_day_label(day), window.line_of(start), window.line_of(following), start))
    return marks


def is_all_day(start, end, timezone_name):
    """Whether a booking runs from one local midnight to another, as an Outlook all-day event becomes."""
    zone = ZoneInfo(timezone_name)
    return start.astimezone(zone).time() == time.min and end.astimezone(zone).time() == time.min


def time_text(start, end, timezone_name):
    zone = ZoneInfo(timezone_name)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    if is_all_day(start, end, timezone_name):
        last_day = local_end.date() - timedelta(days=1)
        if last_day <= local_start.date():
            return f"All day, {_day_label(local_start.date())}"
        return f"All day, {_day_label(local_start.date())} – {_day_label(last_day)}"
    if local_start.date() == local_end.date():
        return f"{_day_label(local_start.date())} {local_start:%H:%M}–{local_end:%H:%M}"
    return f"{_day_label(local_start.date())} {local_start:%H:%M} – {_day_label(local_end.date())} {local_end:%H:%M}"


def short_time_text(start, end, timezone_name):
    """What fits on a block: "All day", or the clock times (the dates are on the axis)."""
    if is_all_day(start, end, timezone_name):
        return "All day"
    zone = ZoneInfo(timezone_name)
    return f"{start.astimezone(zone):%H:%M}–{end.astimezone(zone):%H:%M}"


def place(booking, window, timezone_name, linked=False, failed=False):
    """The block of one booking in `window`, or None when the booking lies outside it."""
    if booking.end_at <= window.start or booking.start_at >= window.end:
        return None
    first_line = window.line_of(booking.start_at)
    last_line = max(first_line + 1, window.line_after(booking.end_at))
    status = booking.status
    return Block(
        booking_id=booking.id,
        first_line=first_line,
        last_line=min(last_line, window.slots + 1),
        time_text=time_text(booking.start_at, booking.end_at, timezone_name),
        short_time=short_time_text(booking.start_at, booking.end_at, timezone_name),
        status=status.name,
        status_colour=status.id % STATUS_COLOURS,
        occupies=status.blocks_object,
        customer=booking.customer.name if booking.customer else "",
        remark=(booking.remark or "").strip(),
        all_day=is_all_day(booking.start_at, booking.end_at, timezone_name),
        clipped_before=booking.start_at < window.start,
        clipped_after=booking.end_at > window.end,
        outlook_linked=linked,
        outbound_failed=failed,
        # A popover opened near the right edge grows leftwards, so it never widens the page.
        late=first_line > window.slots // 2,
    )


def build_timeline(organisation, window, object_ids=None, status_ids=None):
    """The rows of `organisation`'s objects with their blocks in `window`: one query for all the bookings."""
    objects_query = (
        db.select(BookableObject)
        .where(BookableObject.organisation_id == organisation.id)
        .order_by(BookableObject.name, BookableObject.id)
    )
    if object_ids:
        objects_query = objects_query.where(BookableObject.id.in_(object_ids))
    objects = db.session.scalars(objects_query).all()

    bookings_query = (
        db.select(Booking)
        .where(Booking.organisation_id == organisation.id)
        .where(Booking.end_at > window.start, Booking.start_at < window.end)
        .options(db.joinedload(Booking.status), db.joinedload(Booking.customer))
        .order_by(Booking.start_at, Booking.id)
    )
    if object_ids:
        bookings_query = bookings_query.where(Booking.object_id.in_(object_ids))
    if status_ids:
        bookings_query = bookings_query.where(Booking.status_id.in_(status_ids))
    bookings = db.session.scalars(bookings_query).unique().all()

    event_fields = event_id_fields(organisation.id)
    failed = failed_outbound_booking_ids(organisation.id)
    rows = {o.id: Row(o.id, o.name) for o in objects if o.active}
    names = {o.id: o.name for o in objects}
    for booking in bookings:
        extra = booking.extra or {}
        block = place(
            booking,
            window,
            organisation.timezone,
            linked=any(extra.get(name) for name in event_fields),
            failed=booking.id in failed,
        )
        if block is None or booking.object_id not in names:
            continue
        row = rows.setdefault(booking.object_id, Row(booking.object_id, names[booking.object_id]))
        row.blocks.append(block)
    for row in rows.values():
        # All-day bars take the first lane; the grid fills the lanes in this order.
        row.blocks.sort(key=lambda b: (not b.all_day, b.first_line, b.booking_id))
    ordered = sorted(rows.values(), key=lambda r: (r.name.lower(), r.object_id))
    return Timeline(window, marks_for(window, organisation.timezone), ordered)


def failed_outbound_booking_ids(organisation_id):
    """Bookings whose write to Outlook was given up on: parked outbound jobs of the organisation's integrations."""
    integration_ids = db.session.scalars(
        db.select(Integration.id).where(Integration.organisation_id == organisation_id)
    ).all()
    if not integration_ids:
        return set()
    # Outbound job keys are "integration:booking" (app.outbound.trigger.outbound_key).
    keys = db.session.scalars(
        db.select(Job.key)
        .where(Job.kind == OUTBOUND_BOOKING, Job.state == JOB_FAILED)
        .where(db.or_(*(Job.key.startswith(f"{i}:") for i in integration_ids)))
    ).all()
    return {int(booking_id) for _, _, booking_id in (key.partition(":") for key in keys) if booking_id.isdigit()}


def placement_css():
    """The grid classes the timeline template uses; app/static/css/timeline.css holds this text."""
    lines = ["/* Generated by app.orgs.timeline.placement_css(); a test keeps it in step. */"]
    for n in range(1, MAX_SLOTS + 1):
        lines.append(f".tl-slots-{n} {{ grid-template-columns: repeat({n}, minmax(0, 1fr)); }}")
    for n in range(1, MAX_SLOTS + 2):
        lines.append(f".tl-from-{n} {{ grid-column-start: {n}; }}")
        lines.append(f".tl-to-{n} {{ grid-column-end: {n}; }}")
    return "\n".join(lines) + "\n"


def _day_label(day):
    return f"{day:%a} {day.day} {day:%b}"
