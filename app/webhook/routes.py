import json

from flask import current_app, jsonify, request

from app.database.quick_commit import commit_without_waiting_for_the_disk
from app.database.sqlite import begin_writing_promptly
from app.extensions import db
from app.metrics import hourly, instruments
from app.subscriptions.notifications import queue_lifecycle_work, queue_syncs, route_notifications
from app.webhook import bp

# Graph's notifications are four or five levels deep. A far deeper body is no notification,
# and reading one recursively (the JSON parser, a repr in a log line) could exhaust the stack.
MAX_JSON_DEPTH = 32


@bp.route("", methods=["POST"])
def notifications():
    return instruments.timed_webhook("change", lambda: _receive(None, "change"))


@bp.route("/lifecycle", methods=["POST"])
def lifecycle():
    return instruments.timed_webhook("lifecycle", lambda: _receive(queue_lifecycle_work, "lifecycle"))


def _receive(on_valid, endpoint):
    try:
        token = request.args.get("validationToken")
    except UnicodeDecodeError:
        return _refuse(400, "The query string is not valid UTF-8.")
    if token is not None:
        # Graph checks the endpoint by asking for its token back, decoded, as plain text.
        return current_app.response_class(token, status=200, mimetype="text/plain")
    try:
        items = _notification_items()
    except Refusal as refusal:
        return _refuse(refusal.status, refusal.reason)
    outcome = route_notifications(items, on_valid)
    instruments.notifications_routed(endpoint, outcome)
    if endpoint == "change" and outcome.links:
        begin_writing_promptly(db.session)
        queue_syncs(outcome)
        hourly.count_notifications(outcome.accepted_by_integration)
    # A lost acknowledged notification costs a sync the polling fallback runs anyway.
    commit_without_waiting_for_the_disk()
    return jsonify(outcome.as_dict()), 202


class Refusal(Exception):
    """The request cannot be read as a body of notifications: answer `status` with `reason`."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _notification_items():
    """The request body's list of notifications (each not yet checked), or raise `Refusal`."""
    if request.mimetype != "application/json":
        raise Refusal(415, "Notifications must be sent as application/json.")
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    too_large = Refusal(413, f"The body is larger than {limit} bytes.")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large
    payload = _decode_json(body)
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise Refusal(400, "The body has no 'value' list of notifications.")
    return items


def _decode_json(body):
    """The decoded JSON of `body`, or raise `Refusal` when it is not JSON or is nested too deeply."""
    too_deep = Refusal(400, f"The body is nested too deeply (more than {MAX_JSON_DEPTH} levels).")
    try:
        payload = json.loads(body)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "The body is not valid JSON.") from None
    # Where the parser's own limit lies depends on the stack in use; this one does not.
    if _nested_deeper_than(payload, MAX_JSON_DEPTH):
        raise too_deep
    return payload


def _nested_deeper_than(value, limit):
    """Whether decoded JSON `value` has arrays or objects nested more than `limit` levels deep."""
    level, containers = 0, [value] if isinstance(value, (dict, list)) else []
    while containers:
        level += 1
        if level > limit:
            return True
        children = (child for container in containers for child in _children(container))
        containers = [child for child in children if isinstance(child, (dict, list))]
    return False


def _children(container):
    return container.values() if isinstance(container, dict) else container


def _refuse(status, reason):
    return jsonify(error=reason), status
