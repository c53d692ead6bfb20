"""Time zone names as Graph accepts them: Windows names and IANA names.

Graph's `dateTimeTimeZone` carries a wall-clock time without offset plus a zone name.
Outlook clients mostly send Windows names ("W. Europe Standard Time"); Graph also takes
IANA names. Only the Windows names a European or American tenant is likely to use are
mapped here; any IANA name works.
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WINDOWS_ZONES = {
    "utc": "UTC",
    "coordinated universal time": "UTC",
    "gmt standard time": "Europe/London",
    "greenwich standard time": "Atlantic/Reykjavik",
    "w. europe standard time": "Europe/Berlin",
    "romance standard time": "Europe/Paris",
    "central europe standard time": "Europe/Budapest",
    "central european standard time": "Europe/Warsaw",
    "e. europe standard time": "Europe/Chisinau",
    "fle standard time": "Europe/Kiev",
    "gtb standard time": "Europe/Bucharest",
    "eastern standard time": "America/New_York",
    "central standard time": "America/Chicago",
    "mountain standard time": "America/Denver",
    "pacific standard time": "America/Los_Angeles",
    "india standard time": "Asia/Kolkata",
    "tokyo standard time": "Asia/Tokyo",
    "aus eastern standard time": "Australia/Sydney",
}


class UnknownZone(ValueError):
    """The name is neither a mapped Windows zone nor an IANA zone."""


def resolve(name):
    """The ZoneInfo for a Graph time zone name; :class:`UnknownZone` if there is none."""
    if not name or not isinstance(name, str):
        raise UnknownZone(name)
    key = name.strip()
    iana = WINDOWS_ZONES.get(key.lower(), key)
    if iana.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(name) from None


def to_utc(wall_clock, zone_name):
    """A naive wall-clock time in *zone_name* as an aware UTC datetime."""
    return wall_clock.replace(tzinfo=resolve(zone_name)).astimezone(UTC)


def to_wall_clock(moment, zone_name):
    """An aware datetime as the naive wall-clock time in *zone_name*."""
    return moment.astimezone(resolve(zone_name)).replace(tzinfo=None)


def parse_wall_clock(value):
    """Graph's `dateTime`: ISO 8601 without offset, up to seven fractional digits.

    An offset, when present, is applied and the result given in UTC wall-clock time;
    Graph itself ignores offsets here, but accepting them avoids silent surprises.
    """
    if not isinstance(value, str) or not value:
        raise ValueError("empty dateTime")
    text = value.strip()
    offset = None
    if text.endswith("Z"):
        text, offset = text[:-1], "+00:00"
    elif len(text) > 19 and text[-6] in "+-" and text[-3] == ":":
        text, offset = text[:-6], text[-6:]
    main, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(main)
    if fraction:
        parsed = parsed.replace(microsecond=int((fraction + "000000")[:6]))
    if offset:
        parsed = datetime.fromisoformat(parsed.isoformat() + offset).astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_instant(value):
    """A query or body timestamp such as ``2025-06-06T11:00:00.0000000Z``; no offset means UTC."""
    text = value.strip()
    if text.endswith("Z"):
        return parse_wall_clock(text).replace(tzinfo=UTC)
    if len(text) > 19 and text[-6] in "+-" and text[-3] == ":":
        main, offset = text[:-6], text[-6:]
        moment = datetime.fromisoformat(parse_wall_clock(main).isoformat() + offset)
        return moment.astimezone(UTC)
    return parse_wall_clock(text).replace(tzinfo=UTC)


def graph_datetime(wall_clock):
    """How Graph writes a wall-clock time: seven fractional digits, no offset."""
    return wall_clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall_clock.microsecond:06d}0"


def graph_instant(moment):
    """How Graph writes an instant in metadata fields: UTC with a `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
