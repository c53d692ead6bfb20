"""Time for the whole application: the current moment, and the organisation's wall clock.

`utcnow` is the one place the application asks for the current time, so tests can move
it. Times are stored in UTC and shown in the organisation's zone; the two conversions
here are the only way between them.
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def utcnow():
    return datetime.now(UTC)


def local_to_utc(naive_local, timezone_name):
    """A wall-clock time as the admin typed it in `timezone_name`, as an aware UTC datetime."""
    if naive_local is None:
        return None
    return naive_local.replace(tzinfo=ZoneInfo(timezone_name)).astimezone(UTC)


def utc_to_local(aware, timezone_name):
    if aware is None:
        return None
    return aware.astimezone(ZoneInfo(timezone_name))
