import json

from flask import current_app, jsonify, request

from app.database.quick_commit import commit_without_waiting_for_the_disk
from app.database.sqlite import begin_writing_promptly
from app.extensions import db
from app.metrics import instruments
from app.subscriptions.notifications import queue_lifecycle_work, queue_syncs, route_notifications
from app.webhook import bp


@bp.route("", methods=["POST"])
def notifications():
    return instruments.timed_webhook("change", lambda: _receive(None, "change"))


@bp.route("/lifecycle", methods=["POST"])
def lifecycle():
    return instruments.timed_webhook("lifecycle", lambda: _receive(queue_lifecycle_work, "lifecycle"))


def _receive(on_valid, endpoint):
    token = request.args.get("validationToken")
    if token is not None:
        # Graph checks the endpoint by asking for its token back, decoded, as plain text.
        return current_app.response_class(token, status=200, mimetype="text/plain")
    if request.mimetype != "application/json":
        return _refuse(415, "Notifications must be sent as application/json.")
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        return _refuse(413, f"The body is larger than {limit} bytes.")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _refuse(413, f"The body is larger than {limit} bytes.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _refuse(400, "The body is not valid JSON.")
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return _refuse(400, "The body has no 'value' list of notifications.")
    outcome = route_notifications(items, on_valid)
    instruments.notifications_routed(endpoint, outcome)
    if endpoint == "change" and outcome.links:
        begin_writing_promptly(db.session)
        queue_syncs(outcome)
    # A lost acknowledged notification costs a sync the polling fallback runs anyway.
    commit_without_waiting_for_the_disk()
    return jsonify(outcome.as_dict()), 202


def _refuse(status, reason):
    return jsonify(error=reason), status
