"""Time for the whole application: the current moment, and the organisation's wall clock.

`utcnow` is the one place the application asks for the current time, so tests can move
it. Times are stored in UTC and shown in the organisation's zone; the two conversions
here are the only way between them. The years a person or system may type
(`FIRST_YEAR`..`LAST_YEAR`) and the wall-clock times a zone skips are decided here too,
so the portal's forms and the API refuse the same values with the same words.
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# Far enough either way for any booking, and well clear of the ends of Python's dates,
# where a shift to UTC or to the next day overflows.
FIRST_YEAR = 1900
LAST_YEAR = 2999
OUT_OF_RANGE = f"Enter a date between {FIRST_YEAR} and {LAST_YEAR}."


def utcnow():
    return datetime.now(UTC)


def local_to_utc(naive_local, timezone_name):
    """A wall-clock time as the admin typed it in `timezone_name`, as an aware UTC datetime.

    A time that occurs twice (clocks going back) is read as the first of the two; a time
    the clocks skip is read with the offset before the change (see `skipped_time_message`).
    """
    if naive_local is None:
        return None
    return naive_local.replace(tzinfo=ZoneInfo(timezone_name)).astimezone(UTC)


def utc_to_local(aware, timezone_name):
    if aware is None:
        return None
    return aware.astimezone(ZoneInfo(timezone_name))


def in_accepted_years(value):
    """Whether a date or date-time, as written, falls in the years the application accepts."""
    return FIRST_YEAR <= value.year <= LAST_YEAR


def skipped_time_message(naive_local, timezone_name):
    """Why `naive_local` cannot be a time in `timezone_name`, or None when it is one.

    When clocks go forward, the wall-clock times in between never happen there; the
    message names the time, the day, the zone and what the clocks do, for example
    "02:30 does not exist on 28 March in Europe/Amsterdam; clocks go forward from 02:00
    to 03:00."
    """
    if naive_local is None or not in_accepted_years(naive_local):
        return None
    zone = ZoneInfo(timezone_name)
    # zoneinfo gives a skipped time the offset from before the change (fold=0) or after it
    # (fold=1); an existing time comes back unchanged from a round trip through UTC.
    before = naive_local.replace(tzinfo=zone)
    if before.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive_local:
        return None
    after = naive_local.replace(tzinfo=zone, fold=1)
    change = _moment_of_change(after.astimezone(UTC), before.astimezone(UTC), zone)
    jumped_from = change + before.utcoffset()
    jumped_to = change + after.utcoffset()
    if jumped_from.date() == jumped_to.date():
        jump = f"from {_clock_time(jumped_from)} to {_clock_time(jumped_to)}"
    else:
        # A zone that once skipped a whole day (Pacific/Apia, 30 December 2011).
        jump = (
            f"from {_clock_time(jumped_from)} on {_day(jumped_from)} to {_clock_time(jumped_to)} on {_day(jumped_to)}"
        )
    missing = f"{_clock_time(naive_local)} does not exist on {_day(naive_local)} in {timezone_name}"
    return f"{missing}; clocks go forward {jump}."


def _moment_of_change(earlier, later, zone):
    """The first second, between two aware moments, at which the zone's offset differs from `earlier`'s."""
    offset_before = earlier.astimezone(zone).utcoffset()
    # Zones change offset on whole seconds, so halving the interval in seconds ends on the change.
    low, high = int(earlier.timestamp()), int(later.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _day(value):
    return f"{value.day} {value:%B}"


def _clock_time(value):
    return f"{value:%H:%M:%S}" if value.second else f"{value:%H:%M}"
