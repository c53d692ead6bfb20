"""The control API: set the stage and play Outlook users, for tests and the demo.

JSON under `/_control/...` (forms work too, and then lead back to the page). Nothing
here needs a token: the stand-in is for a developer's own machine and CI only.

Appointments are addressed by their meeting `uid` (the iCalUId every copy shares) and,
for one occurrence of a series, by the date it originally fell on (YYYY-MM-DD).
Times are wall-clock times in `time_zone` (the `display_zone` setting by default), given
either as `start`/`end` (ISO) or as `day` (offset from today) with `from`/`to` (HH:MM).
"""

from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from . import meetings, zones
from . import recurrence as rec
from .access import world
from .events import BadEvent, parse_stamp, to_graph
from .identity import expire_tokens, revoke_tokens
from .state import ROOM, USER
from .subscriptions import LIFECYCLE_EVENTS, live_subscriptions, send_lifecycle

bp = Blueprint("control", __name__, url_prefix="/_control")

PAGE_DAYS_BEFORE = 1
PAGE_DAYS_AFTER = 60
#: What a room mailbox may carry for Places.
PLACE_FIELDS = ("capacity", "building", "floor_label", "floor_number")


class ControlError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.message, self.status = message, status


@bp.errorhandler(ControlError)
def _control_error(error):
    if _from_form():
        return render_template("control_error.html", message=error.message), error.status
    return jsonify({"error": error.message}), error.status


# -- the page and the basics -----------------------------------------------------------


@bp.route("/")
def page():
    the_world = world()
    with the_world.lock:
        zone = the_world.settings.display_zone
        mailboxes = [
            {"mailbox": mailbox, "rows": _rows(mailbox, zone)}
            for tenant_id in the_world.tenants
            for mailbox in the_world.mailboxes_of(tenant_id)
        ]
        subscriptions = sorted(live_subscriptions(the_world), key=lambda s: s.mailbox)
        return render_template(
            "control.html",
            mailboxes=mailboxes,
            users=[m["mailbox"] for m in mailboxes if m["mailbox"].kind == USER],
            rooms=[m["mailbox"] for m in mailboxes if m["mailbox"].kind == ROOM],
            subscriptions=subscriptions,
            deliveries=list(the_world.deliveries)[-15:][::-1],
            zone=zone,
            lifecycle_events=LIFECYCLE_EVENTS,
            days_ahead=PAGE_DAYS_AFTER,
        )


@bp.route("/health")
def health():
    return jsonify({"ok": True})


@bp.route("/reset", methods=["POST"])
def reset():
    world().reset()
    return _done({"reset": True})


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    the_world = world()
    if request.method == "POST":
        try:
            the_world.settings.update(_payload())
        except (KeyError, TypeError, ValueError) as problem:
            raise ControlError(f"Unknown or invalid setting: {problem}") from None
    return _done(vars(the_world.settings))


@bp.route("/clock", methods=["POST"])
def clock():
    the_world = world()
    the_world.advance_clock(float(_payload().get("advance_seconds", 0)))
    return _done({"now": the_world.now().isoformat()})


# -- directory -------------------------------------------------------------------------


@bp.route("/tenants", methods=["POST"])
def add_tenant():
    data = _payload()
    tenant = world().add_tenant(data.get("id"), data.get("domain"), data.get("name"))
    return _done(vars(tenant), 201)


@bp.route("/tenants/<tenant_ref>/apps", methods=["POST"])
def add_app(tenant_ref):
    data = _payload()
    tenant = _tenant(tenant_ref)
    if not data.get("client_id") or not data.get("client_secret"):
        raise ControlError("An app needs client_id and client_secret.")
    app = world().add_app(
        tenant.id,
        data["client_id"],
        data["client_secret"],
        data.get("name"),
        data.get("redirect_uris") or (),
        data.get("permissions"),
    )
    return _done({"tenant_id": app.tenant_id, "client_id": app.client_id, "permissions": sorted(app.permissions)}, 201)


@bp.route("/tenants/<tenant_ref>/mailboxes", methods=["POST"])
def add_mailbox(tenant_ref):
    data = _payload()
    tenant = _tenant(tenant_ref)
    if not data.get("upn"):
        raise ControlError("A mailbox needs a upn.")
    kind = data.get("kind", USER)
    if kind not in (USER, ROOM):
        raise ControlError("kind must be user or room.")
    place = {name: data[name] for name in PLACE_FIELDS if data.get(name) is not None}
    mailbox = world().add_mailbox(
        tenant.id, data["upn"], data.get("display_name"), kind, _flag(data, "app_only_denied"), **place
    )
    return _done(_mailbox_summary(mailbox), 201)


@bp.route("/tenants/<tenant_ref>/roomlists", methods=["POST"])
def add_room_list(tenant_ref):
    data = _payload()
    tenant = _tenant(tenant_ref)
    if not data.get("email"):
        raise ControlError("A room list needs an email.")
    rooms = _list(data.get("rooms"))
    unknown = [upn for upn in rooms if world().mailbox(upn) is None]
    if unknown:
        raise ControlError(f"Unknown room(s): {', '.join(unknown)}.")
    room_list = world().add_room_list(tenant.id, data["email"], data.get("display_name"), rooms)
    return _done({"email": room_list.email, "display_name": room_list.display_name, "rooms": room_list.rooms}, 201)


@bp.route("/mailboxes/<upn>", methods=["POST", "PATCH"])
def change_mailbox(upn):
    data = _payload()
    mailbox = _mailbox(upn)
    if "app_only_denied" in data:
        mailbox.app_only_denied = _flag(data, "app_only_denied")
    return _done(_mailbox_summary(mailbox))


@bp.route("/mailboxes/<upn>/events")
def mailbox_events(upn):
    """Stored items (series masters unexpanded), or with `start` and `end` the instances in that window."""
    mailbox = _mailbox(upn)
    the_world = world()
    with the_world.lock:
        if request.args.get("start") and request.args.get("end"):
            window = zones.parse_instant(request.args["start"]), zones.parse_instant(request.args["end"])
            value = [to_graph(i.event, instance=i, expand=()) for i in mailbox.calendar.instances(*window)]
        else:
            value = [to_graph(e, expand=()) for e in mailbox.calendar.items.values()]
    return jsonify({"value": value})


@bp.route("/mailboxes/<upn>/fill", methods=["POST"])
def fill_mailbox(upn):
    """Book a room solid for load tests: `count` back-to-back appointments of `minutes` each (UTC).

    They start at midnight UTC of `from_day` (offset from today, default -30) and are
    booked by `organizer` (an outside address by default). Subscribers are notified as
    for any change, so fill a calendar this size before anything subscribes to it.
    """
    data = _payload()
    mailbox = _mailbox(upn)
    try:
        count, minutes = int(data.get("count", 100)), int(data.get("minutes", 30))
        first_day = datetime.now(UTC).date() + timedelta(days=int(data.get("from_day", -30)))
    except (TypeError, ValueError):
        raise ControlError("count, minutes and from_day must be whole numbers.") from None
    if count < 1 or minutes < 1:
        raise ControlError("count and minutes must be at least 1.")
    organizer = {"name": "Load test", "address": data.get("organizer") or "load-test@outside.example"}
    start = datetime.combine(first_day, time.min)
    step = timedelta(minutes=minutes)
    the_world = world()
    with the_world.lock:
        for number in range(count):
            begins = start + number * step
            body = {
                "subject": f"{data.get('subject', 'Booked')} {number + 1}",
                "start": {"dateTime": begins.isoformat(), "timeZone": "UTC"},
                "end": {"dateTime": (begins + step).isoformat(), "timeZone": "UTC"},
                "location": {"displayName": mailbox.display_name, "locationEmailAddress": mailbox.upn},
                "attendees": [{"emailAddress": {"address": mailbox.upn}, "type": "resource"}],
            }
            meetings.create(the_world, mailbox, body, organizer=organizer)
    return _done({"mailbox": mailbox.upn, "created": count, "last_end": (start + count * step).isoformat()}, 201)


@bp.route("/mailboxes/<upn>/expire-delta", methods=["POST"])
def expire_delta(upn):
    """Every delta and page token of the mailbox becomes unknown: the next use answers 410."""
    mailbox = _mailbox(upn)
    with world().lock:
        mailbox.calendar.generation += 1
    return _done({"mailbox": mailbox.upn, "generation": mailbox.calendar.generation})


# -- appointments, as Outlook users make them ------------------------------------------


@bp.route("/appointments", methods=["POST"])
def create_appointment():
    data = _payload()
    the_world = world()
    zone = data.get("time_zone") or the_world.settings.display_zone
    attendees = _list(data.get("attendees"))
    organizer = data.get("organizer")
    if not organizer:
        raise ControlError("An appointment needs an organizer: the address of whoever books it.")
    start, end = _times(data, zone)
    rooms = [m for m in map(the_world.mailbox, attendees) if m is not None and m.kind == ROOM]
    first_room = rooms[0] if rooms else None
    body = {
        "subject": data.get("subject", "Appointment"),
        "body": {"contentType": "text", "content": data.get("body", "")},
        "start": {"dateTime": start.isoformat(), "timeZone": zone},
        "end": {"dateTime": end.isoformat(), "timeZone": zone},
        "isAllDay": _flag(data, "is_all_day"),
        "sensitivity": data.get("sensitivity", "normal"),
        "location": {"displayName": data.get("location") or (first_room.display_name if first_room else "")},
    }
    if first_room is not None:
        body["location"]["locationEmailAddress"] = first_room.upn
    spec = data.get("recurrence") or ({"type": data["repeat"]} if data.get("repeat") else None)
    if spec:
        spec = dict(spec)
        for name in ("count", "interval"):
            if data.get(name) and name not in spec:
                spec[name] = int(data[name])
        body["recurrence"] = spec if "pattern" in spec else rec.shorthand(spec, start.date(), zone)
    with the_world.lock:
        if not the_world.mailbox(organizer) and not any(the_world.mailbox(a) for a in attendees):
            raise ControlError("Neither the organizer nor any attendee has a mailbox here.")
        try:
            created = meetings.create_meeting(the_world, organizer, data.get("organizer_name"), attendees, body)
        except BadEvent as problem:
            raise ControlError(problem.message) from None
        if not created:
            raise ControlError("No mailbox here takes part in this appointment.")
        uid = next(iter(created.values())).uid
        return _done({"uid": uid, "subject": body["subject"], "events": {upn: e.id for upn, e in created.items()}}, 201)


@bp.route("/appointments")
def list_appointments():
    the_world = world()
    with the_world.lock:
        by_uid = {}
        for mailbox in the_world.mailboxes.values():
            for event in mailbox.calendar.items.values():
                entry = by_uid.setdefault(event.uid, {"uid": event.uid, "subject": event.subject, "copies": {}})
                entry["copies"][mailbox.upn] = {
                    "id": event.id,
                    "cancelled": event.is_cancelled,
                    "organizer": event.is_organizer,
                }
                if event.is_organizer:
                    entry["subject"] = event.subject
        return jsonify({"value": list(by_uid.values())})


@bp.route("/appointments/<uid>/move", methods=["POST"])
def move_appointment(uid):
    data = _payload()
    the_world = world()
    with the_world.lock:
        for mailbox, event in _acting_copies(uid):
            zone = data.get("time_zone") or event.zone
            start, end = _times(data, zone, event=event)
            times = {
                "start": {"dateTime": start.isoformat(), "timeZone": zone},
                "end": {"dateTime": end.isoformat(), "timeZone": zone},
            }
            try:
                if event.is_series:
                    meetings.move_series(the_world, mailbox, event, times["start"], times["end"])
                else:
                    meetings.update(the_world, mailbox, event, times)
            except BadEvent as problem:
                raise ControlError(problem.message) from None
        return _done(_appointment(uid))


@bp.route("/appointments/<uid>/update", methods=["POST"])
def update_appointment(uid):
    data = _payload()
    changes = {}
    if "subject" in data:
        changes["subject"] = data["subject"]
    if "body" in data:
        changes["body"] = {"contentType": "text", "content": data["body"]}
    if "location" in data:
        changes["location"] = {"displayName": data["location"]}
    the_world = world()
    with the_world.lock:
        for mailbox, event in _acting_copies(uid):
            meetings.update(the_world, mailbox, event, changes)
        return _done(_appointment(uid))


@bp.route("/appointments/<uid>/cancel", methods=["POST"])
def cancel_appointment(uid):
    the_world = world()
    with the_world.lock:
        copies = meetings.copies(the_world, uid)
        if not copies:
            raise ControlError(f"No appointment {uid}.", 404)
        meetings.cancel(the_world, copies[0])
        return _done(_appointment(uid))


@bp.route("/appointments/<uid>", methods=["DELETE"])
@bp.route("/appointments/<uid>/delete", methods=["POST"])
def delete_appointment(uid):
    """With `mailbox`, that user deletes their copy (an organiser's delete cancels); else every copy goes."""
    data = _payload() if request.method == "POST" else dict(request.args)
    the_world = world()
    with the_world.lock:
        copies = meetings.copies(the_world, uid)
        if data.get("mailbox"):
            copies = [e for e in copies if e.mailbox == data["mailbox"].lower()]
        if not copies:
            raise ControlError(f"No appointment {uid} here.", 404)
        for event in copies:
            meetings.delete(the_world, the_world.mailbox(event.mailbox), event)
        return _done(_appointment(uid))


@bp.route("/appointments/<uid>/occurrences/<day>/move", methods=["POST"])
def move_occurrence(uid, day):
    data = _payload()
    the_world = world()
    with the_world.lock:
        for mailbox, event in _acting_copies(uid, series=True):
            stamp = _stamp_on(event, day)
            zone = data.get("time_zone") or event.zone
            start, end = _times(data, zone, event=event, on_day=date.fromisoformat(day))
            times = {
                "start": {"dateTime": start.isoformat(), "timeZone": zone},
                "end": {"dateTime": end.isoformat(), "timeZone": zone},
            }
            try:
                meetings.update(the_world, mailbox, event, times, stamp=stamp)
            except BadEvent as problem:
                raise ControlError(problem.message) from None
        return _done(_appointment(uid))


@bp.route("/appointments/<uid>/occurrences/<day>/cancel", methods=["POST"])
def cancel_occurrence(uid, day):
    the_world = world()
    with the_world.lock:
        for mailbox, event in _acting_copies(uid, series=True):
            meetings.delete(the_world, mailbox, event, stamp=_stamp_on(event, day))
        return _done(_appointment(uid))


def _acting_copies(uid, series=False):
    """The copies a change is made on: the organiser's (the rest follow), or each copy without one."""
    the_world = world()
    copies = [e for e in meetings.copies(the_world, uid) if not e.is_cancelled]
    if not copies:
        raise ControlError(f"No appointment {uid}.", 404)
    if series and not copies[0].is_series:
        raise ControlError(f"Appointment {uid} is not a recurring series.")
    chosen = copies[:1] if copies[0].is_organizer else copies
    return [(the_world.mailbox(e.mailbox), e) for e in chosen]


def _stamp_on(event, day):
    wanted = date.fromisoformat(day)
    limit = event.utc(datetime.combine(wanted + timedelta(days=2), time.min))
    for stamp, wall_clock in event.occurrence_starts(limit):
        if wall_clock.date() == wanted:
            return stamp
    raise ControlError(f"The series has no occurrence on {day}.", 404)


def _appointment(uid):
    return {
        "uid": uid,
        "events": {
            e.mailbox: {"id": e.id, "cancelled": e.is_cancelled, "subject": e.subject}
            for e in meetings.copies(world(), uid)
        },
    }


# -- trouble ---------------------------------------------------------------------------


@bp.route("/throttle", methods=["POST", "DELETE"])
def throttle():
    faults = world().faults
    if request.method == "DELETE":
        faults.clear_throttles()
        return _done({"rules": []})
    data = _payload()
    faults.add_throttle(
        int(data.get("count", 1)),
        mailbox=data.get("mailbox") or None,
        retry_after=float(data.get("retry_after", 1)),
        skip=int(data.get("skip", 0)),
        status=int(data.get("status", 429)),
    )
    return _done({"rules": [vars(rule) for rule in faults.rules]})


@bp.route("/latency", methods=["POST"])
def latency():
    data = _payload()
    world().faults.set_latency(float(data.get("seconds", 0)), data.get("mailbox") or None)
    return _done({"latency": world().faults.latency})


@bp.route("/notifications", methods=["GET", "POST"])
def notifications():
    the_world = world()
    if request.method == "POST":
        data = _payload()
        the_world.faults.set_dropping(_flag(data, "drop"), data.get("mailbox") or None)
    with the_world.lock:
        return _done(
            {"dropping": sorted(str(m) for m in the_world.faults.dropping), "deliveries": list(the_world.deliveries)}
        )


@bp.route("/subscriptions")
def subscriptions():
    the_world = world()
    with the_world.lock:
        value = [
            {**vars(s), "expires_at": s.expires_at.isoformat(), "created_at": s.created_at.isoformat()}
            for s in live_subscriptions(the_world)
        ]
    return jsonify({"value": value})


@bp.route("/subscriptions/<subscription_id>/lifecycle", methods=["POST"])
def lifecycle(subscription_id):
    event = _payload().get("event")
    the_world = world()
    with the_world.lock:
        subscription = the_world.subscriptions.get(subscription_id)
        if subscription is None:
            raise ControlError(f"No subscription {subscription_id}.", 404)
        try:
            send_lifecycle(the_world, subscription, event)
        except ValueError as problem:
            raise ControlError(str(problem)) from None
    return _done({"sent": event})


@bp.route("/subscriptions/<subscription_id>/expire", methods=["POST"])
def expire_subscription(subscription_id):
    the_world = world()
    with the_world.lock:
        subscription = the_world.subscriptions.get(subscription_id)
        if subscription is None:
            raise ControlError(f"No subscription {subscription_id}.", 404)
        subscription.expires_at = the_world.now()
    return _done({"expired": subscription_id})


@bp.route("/tokens/expire", methods=["POST"])
def tokens_expire():
    data = _payload()
    count = expire_tokens(world(), upn=data.get("upn"), client_id=data.get("client_id"), refresh=_flag(data, "refresh"))
    return _done({"expired": count})


@bp.route("/tokens/revoke", methods=["POST"])
def tokens_revoke():
    upn = _payload().get("upn")
    if not upn:
        raise ControlError("Say whose tokens: upn.")
    return _done({"revoked": revoke_tokens(world(), upn)})


@bp.route("/requests", methods=["GET", "DELETE"])
def requests_log():
    the_world = world()
    with the_world.lock:
        if request.method == "DELETE":
            the_world.requests.clear()
            return _done({"value": []})
        value = list(the_world.requests)
    contains = request.args.get("path")
    if contains:
        value = [entry for entry in value if contains in entry["path"]]
    if request.args.get("method"):
        value = [entry for entry in value if entry["method"] == request.args["method"].upper()]
    return jsonify({"value": value})


# -- helpers ---------------------------------------------------------------------------


def _rows(mailbox, zone):
    """The page's lines for one mailbox: each instance from yesterday to two months ahead."""
    now = world().now()
    window = now - timedelta(days=PAGE_DAYS_BEFORE), now + timedelta(days=PAGE_DAYS_AFTER)
    rows = []
    for instance in mailbox.calendar.instances(*window):
        event = instance.event
        original = event.wall_clock(parse_stamp(instance.stamp)) if instance.stamp else None
        rows.append(
            {
                "uid": event.uid,
                "subject": (
                    event.exceptions[instance.stamp].fields.get("subject") if instance.kind == "exception" else None
                )
                or event.subject,
                "kind": instance.kind,
                "start": _local(instance.start_utc, zone, event.is_all_day),
                "end": _local(instance.end_utc, zone, event.is_all_day),
                "day": original.date().isoformat() if original else None,
                "cancelled": event.is_cancelled,
                "organizer": event.organizer["emailAddress"].get("address"),
                "is_organizer": event.is_organizer,
                "all_day": event.is_all_day,
            }
        )
    return rows


def _local(moment, zone, all_day):
    shown = moment.replace(tzinfo=None) if all_day else zones.to_wall_clock(moment, zone)
    return shown.strftime("%Y-%m-%dT%H:%M")


def _times(data, zone, *, event=None, on_day=None):
    """(start, end) as wall-clock times in *zone* from `start`/`end` or `day` + `from`/`to`."""
    try:
        if data.get("start"):
            start = zones.parse_wall_clock(data["start"])
            end = zones.parse_wall_clock(data["end"]) if data.get("end") else start + _length(event)
        elif "day" in data or "from" in data:
            today = on_day or (
                datetime.now(UTC).astimezone(zones.resolve(zone)).date() + timedelta(days=int(data.get("day", 0)))
            )
            if _flag(data, "is_all_day"):
                start = datetime.combine(today, time.min)
                end = start + timedelta(days=int(data.get("days", 1)))
            else:
                start = datetime.combine(today, time.fromisoformat(data.get("from", "09:00")))
                end = (
                    datetime.combine(today, time.fromisoformat(data["to"]))
                    if data.get("to")
                    else start + _length(event)
                )
        else:
            raise ControlError("Give start and end, or day with from and to.")
    except (ValueError, zones.UnknownZone) as problem:
        raise ControlError(f"Cannot read the times: {problem}") from None
    return start, end


def _length(event):
    return event.duration if event is not None else timedelta(hours=1)


def _payload():
    if request.is_json:
        return request.get_json(silent=True) or {}
    return {name: value for name, value in request.form.items() if value != ""}


def _from_form():
    return not request.is_json and bool(request.form)


def _done(result, status=200):
    if _from_form():
        return redirect(url_for("control.page"))
    return jsonify(result), status


def _flag(data, name):
    value = data.get(name)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def _list(value):
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value or [])


def _tenant(reference):
    tenant = world().tenant(reference)
    if tenant is None:
        raise ControlError(f"No tenant {reference}.", 404)
    return tenant


def _mailbox(upn):
    mailbox = world().mailbox(upn)
    if mailbox is None:
        raise ControlError(f"No mailbox {upn}.", 404)
    return mailbox


def _mailbox_summary(mailbox):
    return {
        "upn": mailbox.upn,
        "display_name": mailbox.display_name,
        "kind": mailbox.kind,
        "object_id": mailbox.object_id,
        "tenant_id": mailbox.tenant_id,
        "app_only_denied": mailbox.app_only_denied,
    }
