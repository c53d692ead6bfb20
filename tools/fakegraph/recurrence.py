"""Recurrence patterns: which days a series has an occurrence on.

Graph's `patternedRecurrence` is a `pattern` (how often) plus a `range` (from when, until
when). The stand-in expands `daily`, `weekly` and `absoluteMonthly` patterns with
`endDate`, `numbered` and `noEnd` ranges; the relative and yearly patterns are refused
with a clear message rather than expanded wrongly.
"""

from datetime import date, timedelta

SUPPORTED_PATTERNS = ("daily", "weekly", "absoluteMonthly")
SUPPORTED_RANGES = ("endDate", "numbered", "noEnd")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class RecurrenceNotSupported(ValueError):
    """The recurrence is malformed, or uses a pattern the stand-in does not expand."""


def validate(recurrence, first_day):
    """Check *recurrence* and return it normalised (defaults filled in).

    *first_day* is the date of the series' first start: Graph requires the range to
    begin on it.
    """
    if not isinstance(recurrence, dict):
        raise RecurrenceNotSupported("recurrence must be an object with a pattern and a range")
    pattern = dict(recurrence.get("pattern") or {})
    rng = dict(recurrence.get("range") or {})
    kind = pattern.get("type")
    if kind not in SUPPORTED_PATTERNS:
        raise RecurrenceNotSupported(
            f"recurrence pattern {kind!r} is not supported (use {', '.join(SUPPORTED_PATTERNS)})"
        )
    interval = pattern.get("interval", 1)
    if not isinstance(interval, int) or interval < 1:
        raise RecurrenceNotSupported("pattern.interval must be a positive integer")
    pattern["interval"] = interval
    if kind == "weekly":
        days = [str(day).lower() for day in pattern.get("daysOfWeek") or []]
        if not days or any(day not in WEEKDAYS for day in days):
            raise RecurrenceNotSupported("a weekly pattern needs daysOfWeek, e.g. ['monday']")
        pattern["daysOfWeek"] = days
        pattern["firstDayOfWeek"] = str(pattern.get("firstDayOfWeek") or "sunday").lower()
        if pattern["firstDayOfWeek"] not in WEEKDAYS:
            raise RecurrenceNotSupported("pattern.firstDayOfWeek must be a day name")
    if kind == "absoluteMonthly":
        day_of_month = pattern.get("dayOfMonth")
        if not isinstance(day_of_month, int) or not 1 <= day_of_month <= 31:
            raise RecurrenceNotSupported("an absoluteMonthly pattern needs dayOfMonth between 1 and 31")
    range_kind = rng.get("type")
    if range_kind not in SUPPORTED_RANGES:
        raise RecurrenceNotSupported(f"recurrence range {range_kind!r} is not supported")
    try:
        start = date.fromisoformat(str(rng.get("startDate")))
    except ValueError:
        raise RecurrenceNotSupported("range.startDate must be a date (YYYY-MM-DD)") from None
    if start != first_day:
        raise RecurrenceNotSupported("range.startDate must be the date of the event's start")
    if range_kind == "endDate":
        try:
            end = date.fromisoformat(str(rng.get("endDate")))
        except ValueError:
            raise RecurrenceNotSupported("an endDate range needs range.endDate (YYYY-MM-DD)") from None
        if end < start:
            raise RecurrenceNotSupported("range.endDate is before range.startDate")
    if range_kind == "numbered":
        count = rng.get("numberOfOccurrences")
        if not isinstance(count, int) or count < 1:
            raise RecurrenceNotSupported("a numbered range needs numberOfOccurrences of at least 1")
    return {"pattern": pattern, "range": rng}


def shorthand(spec, first_day, zone_name):
    """Build a Graph recurrence from the control API's short form.

    ``{"type": "weekly", "interval": 1, "days_of_week": ["monday"], "count": 10}`` or
    ``{"type": "daily", "until": "2025-07-01"}``; without a count or end it never ends.
    """
    kind = spec.get("type", "weekly")
    pattern = {"type": kind, "interval": int(spec.get("interval", 1))}
    if kind == "weekly":
        pattern["daysOfWeek"] = spec.get("days_of_week") or [WEEKDAYS[first_day.weekday()]]
        pattern["firstDayOfWeek"] = "monday"
    if kind == "absoluteMonthly":
        pattern["dayOfMonth"] = int(spec.get("day_of_month", first_day.day))
    rng = {"type": "noEnd", "startDate": first_day.isoformat(), "recurrenceTimeZone": zone_name}
    if spec.get("count"):
        rng.update(type="numbered", numberOfOccurrences=int(spec["count"]))
    elif spec.get("until"):
        rng.update(type="endDate", endDate=str(spec["until"]))
    return {"pattern": pattern, "range": rng}


def occurrence_dates(recurrence):
    """Yield the dates of the series in order, ending where its range ends (or never)."""
    pattern, rng = recurrence["pattern"], recurrence["range"]
    start = date.fromisoformat(rng["startDate"])
    end = date.fromisoformat(rng["endDate"]) if rng["type"] == "endDate" else None
    remaining = rng.get("numberOfOccurrences") if rng["type"] == "numbered" else None
    for day in _pattern_dates(pattern, start):
        if end is not None and day > end:
            return
        yield day
        if remaining is not None:
            remaining -= 1
            if remaining == 0:
                return


def _pattern_dates(pattern, start):
    interval = pattern["interval"]
    if pattern["type"] == "daily":
        day = start
        while True:
            yield day
            day += timedelta(days=interval)
    elif pattern["type"] == "weekly":
        first = WEEKDAYS.index(pattern["firstDayOfWeek"])
        wanted = {WEEKDAYS.index(day) for day in pattern["daysOfWeek"]}
        week = start - timedelta(days=(start.weekday() - first) % 7)
        while True:
            for offset in range(7):
                day = week + timedelta(days=offset)
                if day >= start and day.weekday() in wanted:
                    yield day
            week += timedelta(weeks=interval)
    else:  # absoluteMonthly: months without that day (Feb 30) are skipped
        year, month = start.year, start.month
        while True:
            try:
                day = date(year, month, pattern["dayOfMonth"])
            except ValueError:
                day = None
            if day is not None and day >= start:
                yield day
            month += interval
            year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
