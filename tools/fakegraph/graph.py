"""Graph v1.0 for calendars: the profile, the default calendar, events, calendarView and its delta.

Every route exists twice, under `me/...` and `users/{id}/...`; :func:`mailbox_route`
registers both and runs the common steps first: the bearer token, the mailbox, injected
latency and throttling, then the access rules of `access.py`. Paging links are always
absolute and on the host the caller used, as Graph's are.
"""

import base64
import functools
import re

from flask import Blueprint, jsonify, request

from . import delta, meetings, zones
from .access import (
    GraphProblem,
    admit,
    authenticate,
    check_calendar_access,
    preferences,
    resolve_mailbox,
    world,
)
from .events import BadEvent, to_graph

bp = Blueprint("graph", __name__, url_prefix="/v1.0")

DEFAULT_LIST_PAGE = 10
NOT_FOUND = "The specified object was not found in the store."
EXPAND_PROPERTIES = re.compile(r"^singleValueExtendedProperties(?:\(\$filter=id eq '(?P<id>[^']*)'\))?$", re.IGNORECASE)
FILTER_PROPERTY = re.compile(
    r"^singleValueExtendedProperties/any\((?P<var>\w+):\s*(?P=var)/id eq '(?P<id>[^']*)'"
    r"(?:\s+and\s+(?P=var)/value eq '(?P<value>[^']*)')?\)$",
    re.IGNORECASE,
)
FILTER_FIELD = re.compile(r"^(?P<field>iCalUId|subject|transactionId) eq '(?P<value>[^']*)'$", re.IGNORECASE)


def mailbox_route(suffix, methods=("GET",)):
    """Register a view of (principal, mailbox, **url values) under `me` and `users/<user>`."""

    def register(view):
        @functools.wraps(view)
        def handle(user=None, **values):
            principal = authenticate()
            the_world = world()
            with the_world.lock:
                mailbox = resolve_mailbox(principal, user)
            admit(mailbox.upn)
            with the_world.lock:
                check_calendar_access(principal, mailbox, write=request.method != "GET")
                return view(principal, mailbox, **values)

        for prefix in ("/me", "/users/<user>"):
            for path in suffix if isinstance(suffix, tuple) else (suffix,):
                endpoint = re.sub(r"\W+", "_", f"{view.__name__}{prefix}{path}")
                bp.add_url_rule(prefix + path, endpoint=endpoint, view_func=handle, methods=list(methods))
        return view

    return register


# -- the user and the calendar ---------------------------------------------------------


@bp.route("/me")
@bp.route("/users/<user>")
def profile(user=None):
    principal = authenticate()
    the_world = world()
    with the_world.lock:
        mailbox = resolve_mailbox(principal, user)
    admit(mailbox.upn)
    allowed = (
        "user.read.all" in principal.scopes
        if principal.app_only
        else mailbox.upn == principal.upn and "user.read" in principal.scopes
    )
    if not allowed:
        raise GraphProblem(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    given, _, surname = mailbox.display_name.partition(" ")
    shown = {
        "@odata.context": request.url_root + "v1.0/$metadata#users/$entity",
        "businessPhones": [],
        "displayName": mailbox.display_name,
        "givenName": given,
        "surname": surname or None,
        "jobTitle": None,
        "mail": mailbox.upn,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "userPrincipalName": mailbox.upn,
        "id": mailbox.object_id,
    }
    return _json(_selected(shown))


@mailbox_route("/calendar")
def calendar(principal, mailbox):
    shown = {
        "@odata.context": request.url_root + "v1.0/$metadata#users('" + mailbox.upn + "')/calendar/$entity",
        "id": "AAMkCal" + base64.urlsafe_b64encode(mailbox.object_id.encode()).decode(),
        "name": "Calendar",
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": True,
        "changeKey": base64.b64encode(str(mailbox.calendar.version).encode()).decode(),
        "canShare": not principal.app_only,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": False,
        "owner": mailbox.address,
    }
    return _json(_selected(shown))


# -- events ----------------------------------------------------------------------------


@mailbox_route(("/events", "/calendar/events"))
def list_events(principal, mailbox):
    items = sorted(mailbox.calendar.items.values(), key=lambda e: (e.utc(e.start), e.id))
    items = [event for event in items if _matches(event, request.args.get("$filter"))]
    return _paged([_shown(event) for event in items], "$skip")


@mailbox_route(("/events", "/calendar/events"), methods=("POST",))
def create_event(principal, mailbox):
    body = _json_body()
    the_world = world()
    transaction_id = body.get("transactionId")
    existing = mailbox.calendar.by_transaction_id(transaction_id) if transaction_id else None
    if existing is not None:
        # A retried create: the first one's event, not a second one.
        return _json(_shown(existing), 201)
    try:
        event = meetings.create(the_world, mailbox, body)
    except BadEvent as problem:
        raise GraphProblem(400, problem.code, problem.message) from None
    return _json(_shown(event), 201)


@mailbox_route(("/events/<event_id>", "/calendar/events/<event_id>"))
def get_event(principal, mailbox, event_id):
    event, instance = _found(mailbox, event_id)
    return _json(_shown(event, instance))


@mailbox_route(("/events/<event_id>", "/calendar/events/<event_id>"), methods=("PATCH",))
def update_event(principal, mailbox, event_id):
    event, instance = _found(mailbox, event_id)
    try:
        meetings.update(world(), mailbox, event, _json_body(), stamp=instance.stamp if instance else None)
    except BadEvent as problem:
        raise GraphProblem(404 if problem.code == "ErrorItemNotFound" else 400, problem.code, problem.message) from None
    event, instance = _found(mailbox, event_id)
    return _json(_shown(event, instance))


@mailbox_route(("/events/<event_id>", "/calendar/events/<event_id>"), methods=("DELETE",))
def delete_event(principal, mailbox, event_id):
    event, instance = _found(mailbox, event_id)
    meetings.delete(world(), mailbox, event, stamp=instance.stamp if instance else None)
    return "", 204


@mailbox_route("/events/<event_id>/cancel", methods=("POST",))
def cancel_event(principal, mailbox, event_id):
    event, instance = _found(mailbox, event_id)
    if not event.is_organizer:
        raise GraphProblem(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. You need to be an organizer to cancel a meeting.",
        )
    meetings.delete(world(), mailbox, event, stamp=instance.stamp if instance else None)
    return "", 202


@mailbox_route("/events/<event_id>/instances")
def event_instances(principal, mailbox, event_id):
    event, instance = _found(mailbox, event_id)
    start, end = _window()
    found = [] if instance is not None or not event.is_series else list(event.instances(start, end))
    found.sort(key=lambda i: i.start_utc)
    return _paged([_shown(event, i) for i in found], "$skip")


# -- calendarView and its delta --------------------------------------------------------


@mailbox_route("/calendarView")
def calendar_view(principal, mailbox):
    start, end = _window()
    instances = mailbox.calendar.instances(start, end)
    return _paged([_shown(i.event, i) for i in instances], "$skip")


@mailbox_route("/calendarView/delta")
def calendar_view_delta(principal, mailbox):
    the_world = world()
    the_round, offset = _delta_round(mailbox.calendar)
    size = _page_size(the_world.settings.default_page_size)
    shown = {"@odata.context": request.url_root + "v1.0/$metadata#Collection(event)"}
    if offset + size < len(the_round.entries):
        token = delta.new_token()
        the_world.pages[token] = (the_round, offset + size)
        shown["@odata.nextLink"] = f"{request.base_url}?$skiptoken={token}"
    else:
        if the_round.delta_token is None:
            the_round.delta_token = delta.new_token()
            the_world.delta_states[the_round.delta_token] = the_round.end_state
        shown["@odata.deltaLink"] = f"{request.base_url}?$deltatoken={the_round.delta_token}"
    zone_out = _zone_out()
    shown["value"] = [delta.in_zone(entry, zone_out) for entry in the_round.entries[offset : offset + size]]
    return _json(shown)


def _delta_round(calendar):
    """The round this request reads and where in it: a page link's, a new one after a delta link, or a first one."""
    the_world = world()
    args = {name.lower(): value for name, value in request.args.items()}
    if "$skiptoken" in args:
        the_round, offset = the_world.pages.get(args["$skiptoken"], (None, 0))
        _check_sync_state(calendar, the_round)
        return the_round, offset
    if "$deltatoken" in args:
        since = the_world.delta_states.get(args["$deltatoken"])
        _check_sync_state(calendar, since)
        return delta.compute_round(calendar, since.window_start, since.window_end, since, _body_type()), 0
    start, end = _window()
    return delta.compute_round(calendar, start, end, body_type=_body_type()), 0


def _check_sync_state(calendar, state):
    if state is None or state.mailbox != calendar.upn or state.generation != calendar.generation:
        generation = getattr(state, "generation", 0)
        raise GraphProblem(
            410,
            "SyncStateNotFound",
            f"The sync state generation is not found; generation={generation};[highest={calendar.generation}].",
        )


# -- helpers ---------------------------------------------------------------------------


def _found(mailbox, event_id):
    event, instance = mailbox.calendar.find(event_id)
    if event is None:
        raise GraphProblem(404, "ErrorItemNotFound", NOT_FOUND)
    return event, instance


def _shown(event, instance=None):
    return to_graph(event, instance=instance, zone_out=_zone_out(), body_type=_body_type(), expand=_expand())


def _zone_out():
    zone = preferences().get("outlook.timezone")
    if not zone:
        return "UTC"
    try:
        zones.resolve(zone)
    except zones.UnknownZone:
        return "UTC"
    return zone


def _body_type():
    kind = preferences().get("outlook.body-content-type", "").lower()
    return kind if kind in ("text", "html") else None


def _expand():
    """Extended-property ids asked for with `$expand`: None (not asked), () for all."""
    given = request.args.get("$expand")
    if not given:
        return None
    match = EXPAND_PROPERTIES.match(given.strip())
    if match is None:
        raise GraphProblem(400, "BadRequest", f"The stand-in cannot expand {given!r}.")
    return (match.group("id"),) if match.group("id") else ()


def _matches(event, given):
    if not given:
        return True
    text = given.strip()
    match = FILTER_PROPERTY.match(text)
    if match:
        prop = event.extended.get(match.group("id").lower())
        return prop is not None and (match.group("value") is None or str(prop["value"]) == match.group("value"))
    match = FILTER_FIELD.match(text)
    if match:
        field = match.group("field").lower()
        actual = {"icaluid": event.uid, "subject": event.subject, "transactionid": event.transaction_id}[field]
        return actual == match.group("value")
    raise GraphProblem(400, "ErrorInvalidUrlQueryFilter", f"The stand-in cannot evaluate this $filter: {given}")


def _window():
    args = {name.lower(): value for name, value in request.args.items()}
    if not args.get("startdatetime") or not args.get("enddatetime"):
        raise GraphProblem(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and "
            "EndDateTime.",
        )
    try:
        start, end = zones.parse_instant(args["startdatetime"]), zones.parse_instant(args["enddatetime"])
    except ValueError:
        raise GraphProblem(
            400, "ErrorInvalidParameter", "StartDateTime and EndDateTime must be ISO 8601 times."
        ) from None
    if end <= start:
        raise GraphProblem(400, "ErrorInvalidParameter", "EndDateTime must be after StartDateTime.")
    return start, end


def _page_size(default):
    try:
        size = int(preferences().get("odata.maxpagesize", default))
    except ValueError:
        size = default
    return max(size, 1)


def _paged(items, parameter):
    """A collection page of *items* with a `$skip` nextLink when more remain."""
    try:
        skip = int(request.args.get(parameter, 0))
        top = int(request.args.get("$top", 0)) or _page_size(DEFAULT_LIST_PAGE)
    except ValueError:
        raise GraphProblem(400, "BadRequest", "$skip and $top must be whole numbers.") from None
    shown = {"@odata.context": request.url_root + "v1.0/$metadata#Collection(event)", "value": items[skip : skip + top]}
    if skip + top < len(items):
        query = {name: value for name, value in request.args.items() if name != parameter}
        query[parameter] = str(skip + top)
        shown["@odata.nextLink"] = request.base_url + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return _json(shown)


def _selected(shown):
    """Apply `$select` to a single entity: the named properties plus `@odata.*` and `id`."""
    wanted = request.args.get("$select")
    if not wanted:
        return shown
    names = {name.strip().lower() for name in wanted.split(",")} | {"id"}
    return {key: value for key, value in shown.items() if key.startswith("@") or key.lower() in names}


def _json_body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise GraphProblem(400, "RequestBodyRead", "The request body must be a JSON object.")
    return body


def _json(payload, status=200):
    response = jsonify(payload)
    response.status_code = status
    applied = [f"{name}={value}" for name, value in preferences().items() if name in ("odata.maxpagesize",)]
    zone = preferences().get("outlook.timezone")
    if zone:
        applied.append(f'outlook.timezone="{_zone_out()}"')
    if applied:
        response.headers["Preference-Applied"] = ", ".join(applied)
    return response
