"""Jinja filters: stored UTC times in the organisation's time zone, and a remark's subject and description."""

from app import clock
from app.clock import utc_to_local
from app.sync.mapping import remark_parts


def localtime(value, timezone_name, fmt="%Y-%m-%d %H:%M"):
    if value is None:
        return "—"
    return utc_to_local(value, timezone_name).strftime(fmt)


def relative_time(value, now=None):
    if value is None:
        return "never"
    seconds = int(((now or clock.utcnow()) - value).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def register(app):
    app.add_template_filter(localtime)
    app.add_template_filter(relative_time, "reltime")
    app.add_template_filter(remark_parts)
