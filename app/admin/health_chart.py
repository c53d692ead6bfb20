"""Sync health over the last 7 days, by hour, drawn as server-rendered SVG from the hourly rollups.

The status page shows `health_chart` (three panels: sync runs, notifications, bookings);
the support overview shows a `sparklines` column, read for all its rows in one query.
Geometry is worked out here so the templates only place what they are given; hours are
UTC buckets, labelled by the day they fall on in the organisation's zone.
"""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_login import current_user

from app import clock
from app.admin import bp
from app.extensions import db
from app.metrics.hourly import hour_of
from app.models import Integration, SyncHourly
from app.models.sync_hourly import COUNTERS

HOURS = 7 * 24
HOUR = timedelta(hours=1)

# The chart's own units (its viewBox); the SVG scales to the width it is given.
BAR_WIDTH = 5
LEFT = 48
PLOT_WIDTH = HOURS * BAR_WIDTH
WIDTH = LEFT + PLOT_WIDTH + 12
PANEL_HEIGHT = 56
PANEL_GAP = 28
TOP = 26
AXIS_Y = TOP + 3 * PANEL_HEIGHT + 2 * PANEL_GAP
HEIGHT = AXIS_Y + 34
#: Local hours marked on the axis inside each day (midnight is the day's own line).
TICK_HOURS = (6, 12, 18)
# A day's label needs about this much room; a shorter stretch of day at an edge goes unlabelled.
DAY_LABEL_ROOM = 40

#: (title, [(counter, label, CSS class)]) per panel, drawn top to bottom; series stack bottom up.
PANELS = (
    ("Sync runs", [("syncs_ok", "ok", "ok"), ("syncs_failed", "failed", "failed")]),
    ("Notifications received", [("notifications", "received", "notified")]),
    (
        "Bookings",
        [
            ("bookings_created", "created", "created"),
            ("bookings_updated", "updated", "updated"),
            ("bookings_cancelled", "cancelled", "cancelled"),
        ],
    ),
)

LABELS = {
    "syncs_ok": "syncs ok",
    "syncs_failed": "syncs failed",
    "notifications": "notifications received",
    "bookings_created": "bookings created",
    "bookings_updated": "bookings updated",
    "bookings_cancelled": "bookings cancelled",
}


@dataclass
class Bar:
    css_class: str
    y: float
    height: float


@dataclass
class Slot:
    x: int
    hour: datetime  # UTC start of the hour
    title: str  # empty when nothing happened
    bars: list


@dataclass
class Panel:
    title: str
    top: int
    peak: int
    legend: list  # (label, CSS class, total)
    slots: list

    @property
    def bottom(self):
        return self.top + PANEL_HEIGHT


@dataclass
class DayMark:
    x: float  # where the day starts; the left edge for the first, partial day
    label_x: float | None  # the middle of the day's stretch, or None when too short to label
    label: str
    short_label: str  # for narrow screens, where the chart is drawn small and its text large
    starts_here: bool  # whether the day begins inside the chart (a midnight line is drawn)
    ticks: list  # (x, label) of TICK_HOURS that fall inside the chart


@dataclass
class DayTotals:
    label: str
    counts: dict


@dataclass
class HealthChart:
    timezone: str
    start: datetime
    end: datetime
    totals: dict
    panels: list
    days: list
    by_day: list
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = LEFT + PLOT_WIDTH
    axis_y: int = AXIS_Y
    bar_width: int = BAR_WIDTH
    labels: dict = field(default_factory=lambda: dict(LABELS))

    @property
    def empty(self):
        return not any(self.totals.values())

    @property
    def summary(self):
        """The seven days' totals in one sentence, for the SVG's description and the page."""
        return "; ".join(f"{self.totals[name]} {LABELS[name]}" for name in COUNTERS) + "."


def window(now=None):
    """The first and last UTC hour of the seven days shown: the current hour is the last."""
    last = hour_of(now or clock.utcnow())
    return last - (HOURS - 1) * HOUR, last


def counts_by_hour(integration_ids, start, end):
    """{integration id: {UTC hour: {counter: n}}} for the hours from `start` to `end`, in one query."""
    if not integration_ids:
        return {}
    rows = db.session.execute(
        db.select(SyncHourly).where(
            SyncHourly.integration_id.in_(sorted(set(integration_ids))),
            SyncHourly.hour >= start,
            SyncHourly.hour <= end,
        )
    ).scalars()
    found = {}
    for row in rows:
        found.setdefault(row.integration_id, {})[row.hour] = {name: getattr(row, name) for name in COUNTERS}
    return found


def health_chart(integration_id, timezone_name, now=None):
    """The chart of one integration's last seven days, hours placed in `timezone_name`."""
    start, end = window(now)
    counts = counts_by_hour([integration_id], start, end).get(integration_id, {})
    zone = ZoneInfo(timezone_name)
    hours = [start + index * HOUR for index in range(HOURS)]
    zero = dict.fromkeys(COUNTERS, 0)
    per_hour = [counts.get(hour, zero) for hour in hours]
    totals = {name: sum(hour_counts[name] for hour_counts in per_hour) for name in COUNTERS}
    panels = [
        _panel(title, series, index, hours, per_hour, zone, totals) for index, (title, series) in enumerate(PANELS)
    ]
    return HealthChart(
        timezone=timezone_name,
        start=start,
        end=end + HOUR,
        totals=totals,
        panels=panels,
        days=_day_marks(start, end + HOUR, zone),
        by_day=_by_day(hours, per_hour, zone),
    )


def _panel(title, series, index, hours, per_hour, zone, totals):
    top = TOP + index * (PANEL_HEIGHT + PANEL_GAP)
    peak = max(sum(hour_counts[name] for name, _, _ in series) for hour_counts in per_hour)
    slots = []
    for position, (hour, hour_counts) in enumerate(zip(hours, per_hour, strict=True)):
        bars, base = [], top + PANEL_HEIGHT
        for name, _, css_class in series:
            height = round(hour_counts[name] / peak * PANEL_HEIGHT, 2) if peak else 0
            base -= height
            bars.append(Bar(css_class, round(base, 2), height))
        described = [f"{hour_counts[name]} {label}" for name, label, _ in series if hour_counts[name]]
        title_text = f"{_hour_span(hour, zone)}: {', '.join(described)}" if described else ""
        slots.append(Slot(LEFT + position * BAR_WIDTH, hour, title_text, bars))
    legend = [(label, css_class, totals[name]) for name, label, css_class in series]
    return Panel(title, top, peak, legend, slots)


def _hour_span(hour, zone):
    local = hour.astimezone(zone)
    return f"{local:%a %-d %b %H:%M}–{(hour + HOUR).astimezone(zone):%H:%M}"


def _x_of(moment, start):
    return LEFT + (moment - start) / HOUR * BAR_WIDTH


def _day_marks(start, end, zone):
    """Each local day the chart touches: where it begins and where its label goes."""
    marks = []
    day = start.astimezone(zone).date()
    while True:
        begins = datetime.combine(day, time(0), zone)
        if begins >= end:
            return marks
        following = datetime.combine(day + timedelta(days=1), time(0), zone)
        left = max(_x_of(begins, start), LEFT)
        right = min(_x_of(following, start), LEFT + PLOT_WIDTH)
        label_x = round((left + right) / 2, 1) if right - left >= DAY_LABEL_ROOM else None
        ticks = [
            (round(_x_of(moment, start), 1), f"{hour:02d}")
            for hour in TICK_HOURS
            if start <= (moment := datetime.combine(day, time(hour), zone)) < end
        ]
        marks.append(DayMark(round(left, 1), label_x, f"{begins:%a %-d %b}", f"{begins:%a %-d}", begins > start, ticks))
        day += timedelta(days=1)


def _by_day(hours, per_hour, zone):
    days = {}
    for hour, hour_counts in zip(hours, per_hour, strict=True):
        label = f"{hour.astimezone(zone):%a %-d %b}"
        totals = days.setdefault(label, dict.fromkeys(COUNTERS, 0))
        for name in COUNTERS:
            totals[name] += hour_counts[name]
    return [DayTotals(label, counts) for label, counts in days.items()]


# -- the support overview's sparklines -------------------------------------------------

SPARK_HEIGHT = 20


@dataclass
class Sparkline:
    """Sync runs per hour over seven days, ok stacked under failed, as two SVG paths (viewBox 168 by 20)."""

    ok_path: str
    failed_path: str
    ok: int
    failed: int
    width: int = HOURS
    height: int = SPARK_HEIGHT

    @property
    def summary(self):
        return f"{self.ok} syncs ok, {self.failed} failed in 7 days"


def sparklines(integration_ids, now=None):
    """{integration id: Sparkline} for every id given, read in one query; for the support pages."""
    start, end = window(now)
    counts = counts_by_hour(integration_ids, start, end)
    return {integration_id: _sparkline(counts.get(integration_id, {}), start) for integration_id in integration_ids}


def _sparkline(counts, start):
    peak = max((row["syncs_ok"] + row["syncs_failed"] for row in counts.values()), default=0)
    ok_path, failed_path = [], []
    for hour, row in sorted(counts.items()):
        x = round((hour - start) / HOUR)
        ok = round(row["syncs_ok"] / peak * SPARK_HEIGHT, 2) if peak else 0
        failed = round(row["syncs_failed"] / peak * SPARK_HEIGHT, 2) if peak else 0
        if ok:
            ok_path.append(f"M{x} {SPARK_HEIGHT}v-{ok}h1v{ok}z")
        if failed:
            failed_path.append(f"M{x} {round(SPARK_HEIGHT - ok, 2)}v-{failed}h1v{failed}z")
    return Sparkline(
        "".join(ok_path),
        "".join(failed_path),
        sum(row["syncs_ok"] for row in counts.values()),
        sum(row["syncs_failed"] for row in counts.values()),
    )


# -- template globals: each narrows what it returns to what the signed-in user may see --


@bp.app_template_global()
def sync_health_chart(integration, organisation):
    """The status page's chart of `integration`, or None for a user who may not see it."""
    if not current_user.is_authenticated or not current_user.can_access(integration.organisation_id):
        return None
    return health_chart(integration.id, organisation.timezone)


@bp.app_template_global()
def sync_sparklines(integration_ids):
    """Sparklines of those of `integration_ids` the signed-in user may see, in one query."""
    if not current_user.is_authenticated:
        return {}
    ids = list(integration_ids)
    if not current_user.is_support:
        ids = list(
            db.session.scalars(
                db.select(Integration.id).where(
                    Integration.id.in_(ids), Integration.organisation_id == current_user.organisation_id
                )
            )
        )
    return sparklines(ids)
