"""The booking API's endpoints: thin views over the token's organisation and save_booking."""

import json

from flask import current_app, jsonify, request, url_for
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import HTTPException

from app import clock
from app.api import bp
from app.api.auth import current_organisation
from app.api.error_responses import ApiError
from app.api.serialize import (
    API_NAMES,
    MAX_ID,
    booking_json,
    customer_json,
    event_id_fields,
    object_json,
    parse_booking,
    parse_int,
    parse_range_bound,
    parse_status_change,
    status_json,
)
from app.bookings.service import save_booking
from app.bookings.validation import OVERLAP
from app.extensions import db
from app.models import BookableObject, Booking, BookingStatus, Customer

CHANNEL_API = "api"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# A booking body is a few hundred bytes; a remark of 10,000 characters fits many times over.
MAX_BODY_BYTES = 256 * 1024
INVALID_BOOKING = "The booking is not valid."
KNOWN_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


# --- Bookings --------------------------------------------------------------------------------


@bp.route("/bookings")
def booking_list():
    organisation = current_organisation()
    errors = {}
    bounds = {}
    for name in ("start", "end"):
        if request.args.get(name):
            bounds[name], message = parse_range_bound(
                request.args[name], organisation.timezone, name, is_end=name == "end"
            )
            if message:
                errors[name] = message
    start = bounds.get("start") or clock.utcnow()
    end = bounds.get("end")
    if "start" not in errors and end is not None and end <= start:
        errors["end"] = "The end of the range must be after its start (the start is now unless given)."
    limit, after_id = _paging(errors)
    if errors:
        raise ApiError(400, "The query is not valid.", errors)
    query = (
        db.select(Booking)
        .where(Booking.organisation_id == organisation.id, Booking.end_at > start)
        .options(joinedload(Booking.object), joinedload(Booking.status), joinedload(Booking.customer))
    )
    if end is not None:
        query = query.where(Booking.start_at < end)
    event_fields = event_id_fields(organisation.id)
    return _page(query, Booking, limit, after_id, lambda booking: booking_json(booking, event_fields))


@bp.route("/bookings/<int:booking_id>")
def booking_detail(booking_id):
    return _booking_response(_booking_or_404(booking_id))


@bp.route("/bookings", methods=["POST"])
def booking_create():
    organisation = current_organisation()
    changes, errors = parse_booking(_json_object(), organisation)
    if errors:
        raise ApiError(422, INVALID_BOOKING, errors)
    booking = Booking(organisation_id=organisation.id, channel=CHANNEL_API, remark="", extra={})
    _apply(booking, changes)
    _save(booking)
    response = _booking_response(booking)
    response.status_code = 201
    response.headers["Location"] = url_for("api.booking_detail", booking_id=booking.id)
    return response


@bp.route("/bookings/<int:booking_id>", methods=["PATCH"])
def booking_update(booking_id):
    booking = _booking_or_404(booking_id)
    changes, errors = parse_booking(_json_object(), current_organisation(), booking)
    if errors:
        raise ApiError(422, INVALID_BOOKING, errors)
    # A body that changes nothing saves nothing, so it neither moves updated_at nor wakes outbound.
    if _differs(booking, changes):
        _apply(booking, changes)
        _save(booking)
    return _booking_response(booking)


@bp.route("/bookings/<int:booking_id>/status", methods=["POST"])
def booking_status_change(booking_id):
    booking = _booking_or_404(booking_id)
    changes, errors = parse_status_change(_json_object(), current_organisation())
    if errors:
        raise ApiError(422, "The status change is not valid.", errors)
    if _differs(booking, changes):
        _apply(booking, changes)
        _save(booking)
    return _booking_response(booking)


def _booking_or_404(booking_id):
    booking = db.session.get(Booking, booking_id) if booking_id <= MAX_ID else None
    if booking is None or booking.organisation_id != current_organisation().id:
        raise ApiError(404, f"There is no booking with id {booking_id}.")
    return booking


def _booking_response(booking):
    return jsonify(booking_json(booking, event_id_fields(booking.organisation_id)))


def _differs(booking, changes):
    return any(getattr(booking, attribute) != value for attribute, value in changes.items())


def _apply(booking, changes):
    # Related rows are set along with their ids: validation reads booking.status, which
    # would otherwise still be the old status until the next flush.
    for attribute, value in changes.items():
        setattr(booking, attribute, value)


def _save(booking):
    """Save through the portal's path (validate, commit, queue outbound) or answer why not."""
    try:
        errors = save_booking(booking)
    except IntegrityError:
        # Something the booking refers to changed under it between the checks and the commit.
        db.session.rollback()
        raise ApiError(
            409, "The booking could not be saved because related data changed meanwhile; try again."
        ) from None
    if errors:
        fields = {API_NAMES.get(error.field, error.field): error.message for error in errors}
        if any(error.code == OVERLAP for error in errors):
            raise ApiError(409, "The booking overlaps another booking of the same object.", fields)
        raise ApiError(422, INVALID_BOOKING, fields)


def _json_object():
    if not request.is_json:
        raise ApiError(415, "Send the body as JSON, with the header 'Content-Type: application/json'.")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return payload


# --- Objects, customers, statuses ------------------------------------------------------------


@bp.route("/objects")
def object_list():
    return _listing(BookableObject, object_json)


@bp.route("/customers")
def customer_list():
    return _listing(Customer, customer_json)


@bp.route("/statuses")
def status_list():
    return _listing(BookingStatus, status_json)


def _listing(model, shape):
    errors = {}
    limit, after_id = _paging(errors)
    if errors:
        raise ApiError(400, "The query is not valid.", errors)
    query = db.select(model).where(model.organisation_id == current_organisation().id)
    return _page(query, model, limit, after_id, shape)


# --- Paging ----------------------------------------------------------------------------------


def _paging(errors):
    """`limit` and `after_id` from the query; problems go into `errors`."""
    limit, message = parse_int(request.args.get("limit") or DEFAULT_LIMIT, "limit", 1, MAX_LIMIT)
    if message:
        errors["limit"] = message
    after_id, message = parse_int(request.args.get("after_id") or 0, "after_id", 0, MAX_ID)
    if message:
        errors["after_id"] = message
    return limit, after_id


def _page(query, model, limit, after_id, shape):
    """One page in id order: new rows join at the end, so following `next_after_id` skips none."""
    rows = db.session.scalars(query.where(model.id > after_id).order_by(model.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(data=[shape(row) for row in rows], next_after_id=rows[-1].id if more else None)


# --- Anything else under /api/v1 -------------------------------------------------------------


@bp.route("/", defaults={"path": ""}, methods=KNOWN_METHODS)
@bp.route("/<path:path>", methods=KNOWN_METHODS)
def unknown(path):
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in KNOWN_METHODS:
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != "api.unknown":
            allowed.append(method)
    if allowed:
        listed = ", ".join(allowed)
        raise ApiError(405, f"{request.method} is not allowed here; use {listed}.", headers={"Allow": listed})
    raise ApiError(404, "There is no such API endpoint.")
