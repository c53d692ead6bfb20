"""Pure translation of a Graph event into the facts the sync decides on.

No database, no HTTP: a Graph event dict and the organisation's time zone go in, an
`IncomingEvent` comes out, so every rule about times and texts is unit-testable.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from html.parser import HTMLParser
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.clock import local_to_utc

PRIVATE_REMARK = "Private appointment"
SERIES_MASTER = "seriesMaster"
BOOKING_ID_SUFFIX = re.compile(r"\[(\d{1,18})\]\s*$")
REMARK_LIMIT = 10000
# Whitespace and plain tags only, as in the empty HTML skeleton many room bookings carry:
# such a body has no text, so the parser can be skipped. One character or tag per step.
NO_TEXT_HTML = re.compile(r"(?:\s|</?[A-Za-z][^<>]*>)*")


class EventNotUnderstood(ValueError):
    """The event lacks what a booking needs (for example a readable start time)."""


@dataclass(frozen=True)
class IncomingEvent:
    id: str
    removed: bool = False
    cancelled: bool = False
    series_master: bool = False
    subject: str = ""
    remark: str = ""
    start_at: datetime | None = None
    end_at: datetime | None = None
    organiser_email: str | None = None
    booking_id_in_subject: int | None = None
    # Kept for the conflicts list: what a person needs to find the appointment in Outlook.
    organiser_name: str | None = None
    all_day: bool = False
    private: bool = False


def parse_event(event, timezone_name):
    """Translate one item of a calendarView delta page.

    `timezone_name` is the organisation's zone: all-day events cover whole days there.
    """
    event_id = event.get("id")
    if not event_id:
        raise EventNotUnderstood("the item has no id")
    if "@removed" in event:
        return IncomingEvent(id=event_id, removed=True)
    subject = (event.get("subject") or "").strip()
    start_at, end_at = event_period(event, timezone_name)
    return IncomingEvent(
        id=event_id,
        cancelled=bool(event.get("isCancelled")),
        series_master=event.get("type") == SERIES_MASTER,
        subject=subject,
        remark=remark_for(event),
        start_at=start_at,
        end_at=end_at,
        organiser_email=organiser_email(event),
        booking_id_in_subject=booking_id_in(subject),
        organiser_name=((event.get("organizer") or {}).get("emailAddress") or {}).get("name") or None,
        all_day=bool(event.get("isAllDay")),
        private=is_private(event),
    )


def booking_id_in(subject):
    """The booking id from a trailing `[123]`, which outbound puts in every subject."""
    match = BOOKING_ID_SUFFIX.search(subject or "")
    return int(match.group(1)) if match else None


def organiser_email(event):
    address = ((event.get("organizer") or {}).get("emailAddress") or {}).get("address")
    return address.strip().lower() if address else None


def is_private(event):
    return (event.get("sensitivity") or "").lower() == "private"


def remark_for(event):
    """Subject and plain-text description; private appointments reveal neither."""
    if is_private(event):
        return PRIVATE_REMARK
    subject = (event.get("subject") or "").strip()
    body = event.get("body") or {}
    text = body.get("content") or ""
    if (body.get("contentType") or "").lower() == "html":
        text = "" if NO_TEXT_HTML.fullmatch(text) else html_to_text(text)
    text = _tidy(text)
    remark = f"{subject}\n\n{text}" if subject and text else subject or text
    return remark[:REMARK_LIMIT]


def remark_parts(remark):
    """(subject, description) of a remark written as "subject, blank line, description"."""
    subject, _, description = (remark or "").partition("\n\n")
    return subject.strip(), description.strip()


def event_period(event, timezone_name):
    """Start and end in UTC. All-day events become the organisation's local midnights.

    Graph returns an all-day event as midnight to midnight in the zone the request asked
    for, so the date part names the calendar days whatever that zone was; anchoring
    those days in the organisation's zone keeps them whole across daylight-saving changes.
    """
    start, end = event.get("start"), event.get("end")
    if not start or not end:
        raise EventNotUnderstood("the event has no start or end")
    if event.get("isAllDay"):
        first_day = _parse_wall_clock(start["dateTime"]).date()
        end_day = _parse_wall_clock(end["dateTime"]).date()
        return (
            local_to_utc(datetime.combine(first_day, time.min), timezone_name),
            local_to_utc(datetime.combine(end_day, time.min), timezone_name),
        )
    return _to_utc(start), _to_utc(end)


def _to_utc(date_time_zone):
    wall_clock = _parse_wall_clock(date_time_zone["dateTime"])
    zone_name = date_time_zone.get("timeZone") or "UTC"
    if zone_name.upper() in ("UTC", "ETC/UTC", "Z"):
        return wall_clock.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        # Windows zone names appear only when the UTC preference was not honoured.
        raise EventNotUnderstood(f"unknown time zone {zone_name!r}") from None
    return wall_clock.replace(tzinfo=zone).astimezone(UTC)


def _parse_wall_clock(value):
    """Graph writes seven fractional digits, which datetime does not read; drop them."""
    if not value:
        raise EventNotUnderstood("the event has an empty time")
    main, _, _fraction = value.partition(".")
    try:
        parsed = datetime.fromisoformat(main.rstrip("Z"))
    except ValueError:
        raise EventNotUnderstood(f"unreadable time {value!r}") from None
    return parsed.replace(tzinfo=None)


class _TextExtractor(HTMLParser):
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}
    HIDDEN = {"style", "script", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self._hidden_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self._hidden_depth += 1
        elif tag in self.BLOCKS:
            self._break()

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self._hidden_depth:
            self._hidden_depth -= 1
        elif tag in self.BLOCKS:
            self._break()
            if tag == "p":
                self.parts.append("\n")

    def _break(self):
        # One line break per block boundary, however many tags meet there.
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._hidden_depth:
            self.parts.append(data)


def html_to_text(html):
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def _tidy(text):
    lines = [" ".join(line.split()) for line in text.replace("\r", "").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
