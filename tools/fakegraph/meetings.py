"""Changes to appointments as Exchange carries them out, across the mailboxes of a meeting.

A meeting's organiser holds the master copy; each attendee mailbox of the tenant (rooms
included) holds its own copy with its own id and the same `uid`. When the organiser
changes the meeting, every copy follows; when the organiser deletes it, the attendee
copies stay behind as cancelled ("Canceled: ..."), as Outlook leaves them. Rooms accept
at once. Every change takes the next version of its calendar and notifies the
subscriptions on that mailbox.

Callers hold `world.lock`.
"""

import copy

from . import events as ev
from .state import ROOM
from .subscriptions import notify_change

CANCELED_PREFIX = "Canceled: "


def create(world, mailbox, body, organizer=None, uid=None):
    """Create an event in *mailbox* from a Graph body; the mailbox organises it unless *organizer* is given.

    *uid* joins the event to a meeting whose other copies exist already.

    :raises events.BadEvent: when Graph would refuse the body.
    """
    now = world.now()
    event = ev.Event(
        id=ev.new_event_id(),
        uid=uid or ev.new_uid(),
        mailbox=mailbox.upn,
        organizer={"emailAddress": dict(organizer or mailbox.address)},
        is_organizer=organizer is None,
        created=now,
        modified=now,
    )
    if organizer is not None:
        event.response = "accepted" if mailbox.kind == ROOM else "notResponded"
    ev.apply_changes(event, body, creating=True)
    _store_new(world, mailbox, event)
    if event.is_organizer:
        _sync_copies(world, event)
    return event


def create_meeting(world, organizer_address, organizer_name, attendees, body):
    """An Outlook user books a meeting: the organiser's copy (if theirs is a mailbox here) and one per attendee.

    Returns {upn: event} of every copy created.
    """
    body = dict(body)
    body["attendees"] = [
        {"emailAddress": {"address": address, "name": _name_of(world, address)}, "type": _attendee_type(world, address)}
        for address in attendees
    ]
    organizer_mailbox = world.mailbox(organizer_address)
    if organizer_mailbox is not None:
        event = create(world, organizer_mailbox, body)
        return {copy_event.mailbox: copy_event for copy_event in copies(world, event.uid)}
    organizer = {"name": organizer_name or organizer_address, "address": organizer_address}
    uid = ev.new_uid()
    created = {}
    for address in attendees:
        mailbox = world.mailbox(address)
        if mailbox is None:
            continue
        created[mailbox.upn] = create(world, mailbox, body, organizer=organizer, uid=uid)
    return created


def update(world, mailbox, event, body, stamp=None):
    """PATCH *event* (or its occurrence *stamp*); the organiser's change reaches every copy.

    The body is applied to a copy first, so a refused change leaves the event as it was.
    """
    calendar = mailbox.calendar
    candidate = copy.deepcopy(event)
    if stamp is None:
        ev.apply_changes(candidate, body, creating=False)
        event.__dict__.update(candidate.__dict__)
        event.touch(world.now(), calendar.next_version())
    else:
        ev.apply_override(candidate, stamp, body, calendar.next_version())
        event.__dict__.update(candidate.__dict__)
        _touch_without_resending(world, event)
    notify_change(world, mailbox, ev.occurrence_id(event.id, stamp) if stamp else event.id, "updated")
    if event.is_organizer:
        _sync_copies(world, event)


def move_series(world, mailbox, event, start, end):
    """Move a whole series: its pattern starts on the new date; edited occurrences are dropped, as in Outlook."""
    recurrence = copy.deepcopy(event.recurrence)
    recurrence["range"]["startDate"] = start["dateTime"][:10]
    if (
        recurrence["range"].get("type") == "endDate"
        and recurrence["range"]["endDate"] < recurrence["range"]["startDate"]
    ):
        recurrence["range"]["endDate"] = recurrence["range"]["startDate"]
    candidate = copy.deepcopy(event)
    candidate.exceptions, candidate.cancelled = {}, {}
    ev.apply_changes(candidate, {"start": start, "end": end, "recurrence": recurrence}, creating=False)
    event.__dict__.update(candidate.__dict__)
    event.touch(world.now(), mailbox.calendar.next_version())
    notify_change(world, mailbox, event.id, "updated")
    if event.is_organizer:
        _sync_copies(world, event)


def delete(world, mailbox, event, stamp=None):
    """DELETE *event* (or its occurrence *stamp*) from *mailbox*.

    Deleting a meeting one organises cancels it for the attendees; an attendee deleting
    their copy affects nobody else.
    """
    calendar = mailbox.calendar
    if stamp is not None:
        event.cancelled[stamp] = calendar.next_version()
        _touch_without_resending(world, event)
        notify_change(world, mailbox, ev.occurrence_id(event.id, stamp), "deleted")
        if event.is_organizer:
            _sync_copies(world, event)
        return
    calendar.remove(event.id)
    notify_change(world, mailbox, event.id, "deleted")
    if event.is_organizer:
        for attendee_copy in copies(world, event.uid):
            _cancel_copy(world, attendee_copy)


def cancel(world, event):
    """The meeting is called off: the organiser's copy goes, attendee copies show it cancelled.

    Without an organiser's copy here (an outside organiser), every copy is cancelled.
    """
    organizer_copy = next((e for e in copies(world, event.uid) if e.is_organizer), None)
    if organizer_copy is not None:
        delete(world, world.mailbox(organizer_copy.mailbox), organizer_copy)
        return
    for attendee_copy in copies(world, event.uid):
        _cancel_copy(world, attendee_copy)


def copies(world, uid):
    """Every copy of the meeting *uid*, across the mailboxes, organiser's first."""
    found = filter(None, (mailbox.calendar.by_uid(uid) for mailbox in world.mailboxes.values()))
    return sorted(found, key=lambda e: (not e.is_organizer, e.mailbox))


def _store_new(world, mailbox, event):
    event.touch(world.now(), mailbox.calendar.next_version())
    mailbox.calendar.add(event)
    notify_change(world, mailbox, event.id, "created")


def _touch_without_resending(world, event):
    # An occurrence-level change carries its own version; bumping the master's would
    # make the next delta resend every occurrence of the series.
    event.modified = world.now()
    event.edits += 1


def _sync_copies(world, organizer_event):
    """Bring every attendee copy in line with the organiser's event; invite and uninvite as needed."""
    invited = set()
    for attendee in organizer_event.attendees:
        mailbox = world.mailbox(attendee["emailAddress"]["address"])
        if mailbox is None or mailbox.tenant_id != world.mailbox(organizer_event.mailbox).tenant_id:
            continue
        if mailbox.upn == organizer_event.mailbox:
            continue
        invited.add(mailbox.upn)
        if mailbox.kind == ROOM and attendee["status"].get("response") != "accepted":
            # Rooms answer at once; the organiser's copy shows it.
            attendee["status"] = {
                "response": "accepted",
                "time": organizer_event.modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        existing = mailbox.calendar.by_uid(organizer_event.uid)
        if existing is None:
            attendee_copy = ev.Event(
                id=ev.new_event_id(),
                uid=organizer_event.uid,
                mailbox=mailbox.upn,
                organizer=copy.deepcopy(organizer_event.organizer),
                is_organizer=False,
                response="accepted" if mailbox.kind == ROOM else "notResponded",
                created=world.now(),
            )
            ev.copy_shared(organizer_event, attendee_copy)
            _store_new(world, mailbox, attendee_copy)
            continue
        previous_exceptions = dict(existing.exceptions)
        previous_cancelled = dict(existing.cancelled)
        series_changed = _series_fields(existing) != _series_fields(organizer_event)
        ev.copy_shared(organizer_event, existing)
        existing.is_cancelled = False
        _renumber_occurrence_changes(mailbox.calendar, existing, previous_exceptions, previous_cancelled)
        if series_changed:
            existing.touch(world.now(), mailbox.calendar.next_version())
        else:
            _touch_without_resending(world, existing)
        notify_change(world, mailbox, existing.id, "updated")
    for attendee_copy in copies(world, organizer_event.uid):
        if not attendee_copy.is_organizer and attendee_copy.mailbox not in invited and not attendee_copy.is_cancelled:
            _cancel_copy(world, attendee_copy)


def _series_fields(event):
    return {name: getattr(event, name) for name in ev.SHARED_FIELDS if name not in ("exceptions", "cancelled")}


def _renumber_occurrence_changes(calendar, event, previous_exceptions, previous_cancelled):
    """Copied exceptions and cancellations get versions of the copy's own calendar.

    Versions count per calendar, so the organiser's numbers mean nothing here: an
    occurrence change the copy had already keeps its version, a new one takes the next.
    """
    for stamp, override in event.exceptions.items():
        before = previous_exceptions.get(stamp)
        unchanged = before is not None and (before.start, before.end, before.fields) == (
            override.start,
            override.end,
            override.fields,
        )
        override.version = before.version if unchanged else calendar.next_version()
    for stamp in event.cancelled:
        event.cancelled[stamp] = previous_cancelled.get(stamp) or calendar.next_version()


def _cancel_copy(world, attendee_copy):
    mailbox = world.mailbox(attendee_copy.mailbox)
    attendee_copy.is_cancelled = True
    if not attendee_copy.subject.startswith(CANCELED_PREFIX):
        attendee_copy.subject = CANCELED_PREFIX + attendee_copy.subject
    attendee_copy.touch(world.now(), mailbox.calendar.next_version())
    notify_change(world, mailbox, attendee_copy.id, "updated")


def _name_of(world, address):
    mailbox = world.mailbox(address)
    return mailbox.display_name if mailbox else address


def _attendee_type(world, address):
    mailbox = world.mailbox(address)
    return "resource" if mailbox is not None and mailbox.kind == ROOM else "required"
