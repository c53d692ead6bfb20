"""Outlook events as the stand-in stores them, and as Graph shows them.

One :class:`Event` is one item in one mailbox: a single appointment or a series master.
Occurrences are not stored; :meth:`Event.instances` derives them from the master's
recurrence, its moved occurrences (exceptions) and its cancelled ones, the way Exchange
expands a series for `calendarView`. Every copy of one meeting (the organiser's, each
attendee's, each room's) is its own Event with its own id and the same `uid`.

Times are kept as wall-clock times in the event's own zone, as Outlook does, so a weekly
09:00 meeting stays at 09:00 across a daylight-saving change. All-day events float: their
midnights are the same dates in whatever zone the reader asks for.
"""

import base64
import copy
import hashlib
import html
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from . import recurrence as rec
from . import zones

#: Properties every copy of a meeting shares; the organiser's change is copied to attendees.
SHARED_FIELDS = (
    "subject",
    "body",
    "zone",
    "start",
    "end",
    "is_all_day",
    "location",
    "locations",
    "attendees",
    "organizer",
    "recurrence",
    "exceptions",
    "cancelled",
    "is_online_meeting",
    "online_meeting_provider",
    "online_meeting",
    "sensitivity",
    "importance",
    "show_as",
)

#: Writable event properties kept as given and shown back unchanged.
PASSTHROUGH = {
    "categories": [],
    "reminderMinutesBeforeStart": 15,
    "isReminderOn": True,
    "responseRequested": True,
    "allowNewTimeProposals": True,
    "hideAttendees": False,
}
#: Properties clients echo back from a GET; Graph ignores them on write.
READ_ONLY = {
    "id",
    "@odata.etag",
    "@odata.type",
    "@odata.context",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "iCalUId",
    "type",
    "seriesMasterId",
    "originalStart",
    "bodyPreview",
    "webLink",
    "isOrganizer",
    "responseStatus",
    "isCancelled",
    "isDraft",
    "hasAttachments",
    "onlineMeeting",
    "onlineMeetingUrl",
}
WRITABLE = {
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "location",
    "locations",
    "attendees",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "transactionId",
    "recurrence",
    "sensitivity",
    "importance",
    "showAs",
    "singleValueExtendedProperties",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "organizer",
} | set(PASSTHROUGH)

NO_TIME = "0001-01-01T00:00:00Z"
MAX_EXPANSION = 10000
TEAMS_PROVIDER = "teamsForBusiness"
ICAL_PREFIX = "040000008200E00074C5B7101A82E008"
OCCURRENCE_MARK = "AAMkOcc"


class BadEvent(ValueError):
    """A write Graph would refuse: carries Graph's error code and message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Override:
    """One moved or edited occurrence of a series (an *exception*)."""

    start: datetime
    end: datetime
    fields: dict = field(default_factory=dict)
    version: int = 0


@dataclass
class Instance:
    """What calendarView shows: a single event, or one occurrence or exception of a series."""

    event: "Event"
    kind: str
    id: str
    start_utc: datetime
    end_utc: datetime
    version: int
    stamp: str | None = None


@dataclass
class Event:
    id: str
    uid: str
    mailbox: str
    organizer: dict
    is_organizer: bool
    subject: str = ""
    body: dict = field(default_factory=lambda: {"contentType": "text", "content": ""})
    zone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    is_all_day: bool = False
    location: dict = field(default_factory=lambda: {"displayName": ""})
    locations: list = field(default_factory=list)
    attendees: list = field(default_factory=list)
    recurrence: dict | None = None
    exceptions: dict = field(default_factory=dict)
    cancelled: dict = field(default_factory=dict)
    is_cancelled: bool = False
    sensitivity: str = "normal"
    importance: str = "normal"
    show_as: str = "busy"
    is_online_meeting: bool = False
    online_meeting_provider: str = "unknown"
    online_meeting: dict | None = None
    transaction_id: str | None = None
    extended: dict = field(default_factory=dict)
    extra: dict = field(default_factory=lambda: dict(PASSTHROUGH))
    response: str = "organizer"
    created: datetime | None = None
    modified: datetime | None = None
    version: int = 0
    edits: int = 0

    # -- identity and time ------------------------------------------------------------

    @property
    def is_series(self):
        return self.recurrence is not None

    @property
    def kind(self):
        return "seriesMaster" if self.is_series else "singleInstance"

    def utc(self, wall_clock):
        """A wall-clock time of this event in UTC; all-day midnights are read as UTC."""
        if self.is_all_day:
            return wall_clock.replace(tzinfo=UTC)
        return zones.to_utc(wall_clock, self.zone)

    def wall_clock(self, moment):
        """The inverse of :meth:`utc`: an instant as this event's wall-clock time."""
        if self.is_all_day:
            return moment.astimezone(UTC).replace(tzinfo=None)
        return zones.to_wall_clock(moment, self.zone)

    @property
    def duration(self):
        return self.end - self.start

    def touch(self, now, version):
        """Record a change: a new version for delta and a new change key."""
        self.modified = now
        self.version = version
        self.edits += 1

    # -- expansion --------------------------------------------------------------------

    def occurrence_starts(self, until_utc):
        """(stamp, wall-clock start) of each occurrence in the series that starts before *until_utc*."""
        start_time = self.start.time()
        for count, day in enumerate(rec.occurrence_dates(self.recurrence)):
            wall_clock = datetime.combine(day, start_time)
            if self.utc(wall_clock) >= until_utc or count >= MAX_EXPANSION:
                return
            yield stamp_of(self.utc(wall_clock)), wall_clock

    def find_occurrence(self, stamp):
        """The original wall-clock start of the occurrence named *stamp*, or None."""
        original = parse_stamp(stamp)
        if original is None:
            return None
        for candidate, wall_clock in self.occurrence_starts(original + timedelta(seconds=1)):
            if candidate == stamp:
                return wall_clock
        return None

    def instances(self, window_start, window_end):
        """The instances of this item that overlap [window_start, window_end)."""
        if not self.is_series:
            start, end = self.utc(self.start), self.utc(self.end)
            if start < window_end and end > window_start:
                yield Instance(self, "singleInstance", self.id, start, end, self.version)
            return
        for stamp, wall_clock in self.occurrence_starts(window_end):
            if stamp in self.cancelled or stamp in self.exceptions:
                continue
            start = self.utc(wall_clock)
            end = self.utc(wall_clock + self.duration)
            if end > window_start:
                yield Instance(self, "occurrence", occurrence_id(self.id, stamp), start, end, self.version, stamp)
        for stamp, override in self.exceptions.items():
            if stamp in self.cancelled:
                continue
            start, end = self.utc(override.start), self.utc(override.end)
            if start < window_end and end > window_start:
                version = max(self.version, override.version)
                yield Instance(self, "exception", occurrence_id(self.id, stamp), start, end, version, stamp)

    def instance(self, stamp):
        """The live occurrence or exception named *stamp*, or None (cancelled or not in the series)."""
        if stamp in self.cancelled:
            return None
        override = self.exceptions.get(stamp)
        if override is not None:
            version = max(self.version, override.version)
            return Instance(
                self,
                "exception",
                occurrence_id(self.id, stamp),
                self.utc(override.start),
                self.utc(override.end),
                version,
                stamp,
            )
        wall_clock = self.find_occurrence(stamp)
        if wall_clock is None:
            return None
        return Instance(
            self,
            "occurrence",
            occurrence_id(self.id, stamp),
            self.utc(wall_clock),
            self.utc(wall_clock + self.duration),
            self.version,
            stamp,
        )


# -- ids ---------------------------------------------------------------------------------


def new_event_id():
    """An opaque id shaped like an immutable Outlook id (URL-safe base64)."""
    return "AAMkAG" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode()


def new_uid():
    """Shaped like Outlook's: a fixed prefix, eight zeros where occurrences put their date, random."""
    return ICAL_PREFIX + "00000000" + secrets.token_hex(24).upper()


def _ical_uid(uid, stamp):
    """In v1.0 each occurrence has its own iCalUId: the series' with the occurrence date in it."""
    if not stamp:
        return uid
    original = parse_stamp(stamp)
    day = f"{original.year:04X}{original.month:02X}{original.day:02X}"
    return uid[: len(ICAL_PREFIX)] + day + uid[len(ICAL_PREFIX) + 8 :]


def stamp_of(moment):
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_stamp(stamp):
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def occurrence_id(master_id, stamp):
    """Occurrence ids name their series and original start, and never change when moved."""
    return OCCURRENCE_MARK + base64.urlsafe_b64encode(f"{master_id}|{stamp}".encode()).decode()


def split_occurrence_id(event_id):
    """(master id, stamp) for an occurrence id, or None for any other id."""
    if not event_id.startswith(OCCURRENCE_MARK):
        return None
    try:
        master_id, stamp = base64.urlsafe_b64decode(event_id[len(OCCURRENCE_MARK) :]).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        return None
    return master_id, stamp


# -- writes ------------------------------------------------------------------------------


def apply_changes(event, body, *, creating):
    """Apply a POST or PATCH body to *event* the way Graph does; :class:`BadEvent` if refused.

    Only the properties present change. Series and all-day rules are checked on the
    result, so a PATCH that moves only the end is judged with the stored start.
    """
    if not isinstance(body, dict):
        raise BadEvent("RequestBodyRead", "The request body must be a JSON object.")
    for name in body:
        if name not in WRITABLE and name not in READ_ONLY and not name.startswith("@"):
            raise BadEvent(
                "RequestBodyRead",
                f"The property '{name}' does not exist on type 'microsoft.graph.event'.",
            )
    if creating and ("start" not in body or "end" not in body):
        raise BadEvent("ErrorInvalidRequest", "An event needs a start and an end.")
    if "subject" in body:
        event.subject = str(body["subject"] or "")
    if "body" in body:
        event.body = _item_body(body["body"])
    _apply_times(event, body)
    if "isAllDay" in body:
        event.is_all_day = bool(body["isAllDay"])
    if "location" in body:
        event.location = {"locationType": "default", **(body["location"] or {"displayName": ""})}
    if "locations" in body:
        event.locations = list(body["locations"] or [])
    if "attendees" in body:
        event.attendees = [_attendee(entry) for entry in body["attendees"] or []]
    for name, attribute in (("sensitivity", "sensitivity"), ("importance", "importance"), ("showAs", "show_as")):
        if name in body:
            setattr(event, attribute, str(body[name]))
    for name in PASSTHROUGH:
        if name in body:
            event.extra[name] = body[name]
    if creating and body.get("transactionId"):
        event.transaction_id = str(body["transactionId"])
    _apply_online_meeting(event, body)
    for prop in body.get("singleValueExtendedProperties") or []:
        if not isinstance(prop, dict) or not prop.get("id"):
            raise BadEvent("ErrorInvalidProperty", "An extended property needs an id.")
        event.extended[str(prop["id"]).lower()] = {"id": prop["id"], "value": prop.get("value")}
    if "recurrence" in body:
        _apply_recurrence(event, body["recurrence"])
    _check_times(event)


def _apply_times(event, body):
    for name in ("start", "end"):
        if name not in body:
            continue
        given = body[name]
        if not isinstance(given, dict) or not given.get("dateTime"):
            raise BadEvent("ErrorInvalidRequest", f"'{name}' must be a dateTimeTimeZone object.")
        zone = given.get("timeZone") or "UTC"
        try:
            zones.resolve(zone)
        except zones.UnknownZone:
            raise BadEvent(
                "TimeZoneNotSupportedException",
                f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone}'.",
            ) from None
        try:
            wall_clock = zones.parse_wall_clock(given["dateTime"])
        except ValueError:
            raise BadEvent("ErrorInvalidRequest", f"Cannot read '{name}.dateTime': {given['dateTime']!r}.") from None
        if name == "start":
            if event.start is not None and event.end is not None and "end" not in body and zone != event.zone:
                # Keep the stored end at the same instant when the start's zone changes.
                event.end = zones.to_wall_clock(event.utc(event.end), zone)
            event.zone, event.start = zone, wall_clock
        else:
            # The event keeps one zone (its start's); an end given in another zone is converted.
            start_zone = body["start"].get("timeZone", "UTC") if "start" in body else event.zone
            if zone != start_zone:
                wall_clock = zones.to_wall_clock(zones.to_utc(wall_clock, zone), start_zone)
            event.end = wall_clock


def _check_times(event):
    if event.end <= event.start:
        raise BadEvent("ErrorCalendarEndDateIsEarlierThanStartDate", "The end date occurs before the start date.")
    if event.is_all_day and (event.start.time() != time.min or event.end.time() != time.min):
        raise BadEvent(
            "ErrorInvalidRequest",
            "An all-day event must start and end at midnight, in the same time zone.",
        )


def _apply_online_meeting(event, body):
    if not body.get("isOnlineMeeting") or event.is_online_meeting:
        # Once online, a meeting stays online: Graph ignores attempts to turn it off.
        return
    event.is_online_meeting = True
    event.online_meeting_provider = body.get("onlineMeetingProvider") or TEAMS_PROVIDER
    if event.online_meeting_provider == TEAMS_PROVIDER:
        meeting = secrets.token_urlsafe(24)
        event.online_meeting = {
            "joinUrl": f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{meeting}%40thread.v2/0",
            "conferenceId": str(secrets.randbelow(10**9)),
            "tollNumber": "+1 425 555 0123",
        }


def _apply_recurrence(event, given):
    if given is None:
        event.recurrence, event.exceptions, event.cancelled = None, {}, {}
        return
    start = event.start
    if start is None:
        raise BadEvent("ErrorInvalidRequest", "A recurring event needs a start.")
    try:
        event.recurrence = rec.validate(given, start.date())
    except rec.RecurrenceNotSupported as problem:
        raise BadEvent("ErrorInvalidRecurrence", str(problem)) from None


def _item_body(given):
    if not isinstance(given, dict):
        raise BadEvent("ErrorInvalidRequest", "'body' must be an itemBody object.")
    kind = str(given.get("contentType") or "text").lower()
    if kind not in ("text", "html"):
        raise BadEvent("ErrorInvalidRequest", "body.contentType must be text or html.")
    return {"contentType": kind, "content": str(given.get("content") or "")}


def _attendee(entry):
    if not isinstance(entry, dict) or not (entry.get("emailAddress") or {}).get("address"):
        raise BadEvent("ErrorInvalidRequest", "An attendee needs emailAddress.address.")
    return {
        "type": entry.get("type") or "required",
        "status": entry.get("status") or {"response": "none", "time": NO_TIME},
        "emailAddress": dict(entry["emailAddress"]),
    }


def apply_override(event, stamp, body, version):
    """PATCH on one occurrence: it becomes (or stays) an exception of the series."""
    unsupported = set(body) - {"start", "end", "subject", "body", "location"} - READ_ONLY
    if unsupported:
        raise BadEvent("ErrorInvalidRequest", f"The stand-in cannot change {sorted(unsupported)} on one occurrence.")
    original = event.find_occurrence(stamp) if stamp not in event.exceptions else None
    if stamp not in event.exceptions and original is None:
        raise BadEvent("ErrorItemNotFound", "The specified object was not found in the store.")
    override = event.exceptions.get(stamp) or Override(original, original + event.duration)
    # The occurrence's new times follow the rules of an event's own, so they are applied
    # to a stand-alone event first.
    probe = Event(
        id="",
        uid="",
        mailbox="",
        organizer={},
        is_organizer=True,
        zone=event.zone,
        start=override.start,
        end=override.end,
        is_all_day=event.is_all_day,
    )
    apply_changes(probe, {name: body[name] for name in ("start", "end") if name in body}, creating=False)
    fields = dict(override.fields)
    for name in ("subject", "body", "location"):
        if name in body:
            fields[name] = _item_body(body[name]) if name == "body" else body[name]
    event.exceptions[stamp] = Override(probe.start, probe.end, fields, version)


def copy_shared(source, target):
    """Make *target* (an attendee's copy) show what the organiser's *source* shows."""
    for name in SHARED_FIELDS:
        setattr(target, name, copy.deepcopy(getattr(source, name)))


# -- reads -------------------------------------------------------------------------------


def to_graph(event, *, instance=None, zone_out=None, body_type=None, expand=None):
    """The event (or one instance of it) as Graph's JSON.

    *zone_out* is the zone of `Prefer: outlook.timezone` (UTC without it); *body_type*
    the one of `Prefer: outlook.body-content-type`; *expand* the extended-property ids
    asked for with `$expand`, or ``()`` for all of them.
    """
    zone_out = zone_out or "UTC"
    kind = instance.kind if instance else event.kind
    override = event.exceptions.get(instance.stamp) if instance and instance.kind == "exception" else None
    fields = override.fields if override else {}
    if instance is None:
        start, end = event.start, event.end
        start_utc, end_utc = event.utc(event.start), event.utc(event.end)
    else:
        start_utc, end_utc = instance.start_utc, instance.end_utc
        start = override.start if override else event.wall_clock(start_utc)
        end = override.end if override else event.wall_clock(end_utc)
    body = fields.get("body") or event.body
    subject = fields.get("subject", event.subject)
    # Changes with every edit of the item, and with every edit of this one occurrence.
    digest = hashlib.sha256(f"{event.id}:{event.edits}:{instance.version if instance else 0}".encode()).digest()
    change_key = base64.b64encode(digest[:21]).decode()
    shown = {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": f'W/"{change_key}"',
        "id": instance.id if instance else event.id,
        "createdDateTime": zones.graph_instant(event.created),
        "lastModifiedDateTime": zones.graph_instant(event.modified),
        "changeKey": change_key,
        "originalStartTimeZone": event.zone,
        "originalEndTimeZone": event.zone,
        "iCalUId": _ical_uid(event.uid, instance.stamp if instance else None),
        "subject": subject,
        "bodyPreview": _preview(body),
        "importance": event.importance,
        "sensitivity": event.sensitivity,
        "isAllDay": event.is_all_day,
        "isCancelled": event.is_cancelled,
        "isOrganizer": event.is_organizer,
        "isDraft": False,
        "hasAttachments": False,
        "seriesMasterId": event.id if instance and kind != "singleInstance" else None,
        "showAs": "free" if event.is_cancelled else event.show_as,
        "type": kind,
        "webLink": f"https://outlook.office365.com/owa/?itemid={event.id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": event.is_online_meeting,
        "onlineMeetingProvider": event.online_meeting_provider,
        "onlineMeeting": copy.deepcopy(event.online_meeting),
        "recurrence": copy.deepcopy(event.recurrence) if kind == "seriesMaster" else None,
        "responseStatus": {"response": event.response, "time": NO_TIME},
        "body": _shown_body(body, body_type),
        "start": _shown_time(event, start, start_utc, zone_out),
        "end": _shown_time(event, end, end_utc, zone_out),
        "location": copy.deepcopy(fields.get("location") or event.location),
        "locations": copy.deepcopy(event.locations),
        "attendees": copy.deepcopy(event.attendees),
        "organizer": copy.deepcopy(event.organizer),
        **copy.deepcopy(event.extra),
    }
    if event.transaction_id and kind in ("singleInstance", "seriesMaster"):
        shown["transactionId"] = event.transaction_id
    if instance is not None and kind != "singleInstance":
        original = parse_stamp(instance.stamp)
        shown["originalStart"] = zones.graph_instant(original)
    if expand is not None:
        wanted = {name.lower() for name in expand}
        shown["singleValueExtendedProperties"] = [
            dict(prop) for key, prop in event.extended.items() if not wanted or key in wanted
        ]
    return shown


def _shown_time(event, wall_clock, moment, zone_out):
    if event.is_all_day:
        # All-day events float: the same midnights whatever zone is asked for.
        return {"dateTime": zones.graph_datetime(wall_clock), "timeZone": zone_out}
    return {"dateTime": zones.graph_datetime(zones.to_wall_clock(moment, zone_out)), "timeZone": zone_out}


def _shown_body(body, body_type):
    """Exchange stores bodies as HTML and shows them so, unless text is preferred."""
    if body_type == "text":
        text = body["content"] if body["contentType"] == "text" else _html_to_text(body["content"])
        return {"contentType": "text", "content": text}
    if body["contentType"] == "html":
        return dict(body)
    escaped = html.escape(body["content"]).replace("\n", "<br>\r\n")
    content = (
        '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n'
        f"<body>\r\n<div>{escaped}</div>\r\n</body>\r\n</html>\r\n"
    )
    return {"contentType": "html", "content": content}


def _html_to_text(markup):
    text = re.sub(r"(?i)<br\s*/?>|</(p|div)>", "\n", markup)
    text = re.sub(r"(?s)<head>.*?</head>|<[^>]+>", "", text)
    return html.unescape(text).strip()


def _preview(body):
    text = body["content"] if body["contentType"] == "text" else _html_to_text(body["content"])
    return " ".join(text.split())[:255]


def removed(event_id):
    """The tombstone calendarView delta shows for an item no longer in the window."""
    return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}
