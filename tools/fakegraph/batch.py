"""JSON batching: up to 20 requests in one `POST /$batch`, each answered on its own.

Each item runs through the same app as a request of its own, with the batch's bearer
token, so it meets the same access rules and the same injected throttling: a throttled
item answers 429 with its own Retry-After while the batch itself answers 200. Items run
one after another, dependencies first; an item whose dependency failed gets 424.
"""

import json

from flask import Blueprint, current_app, jsonify, request

from .access import GraphProblem, delay

bp = Blueprint("batch", __name__, url_prefix="/v1.0")

BATCH_LIMIT = 20
#: Item answer headers worth passing on.
KEPT_HEADERS = ("Content-Type", "Retry-After", "Location", "Preference-Applied", "WWW-Authenticate")


@bp.route("/$batch", methods=["POST"])
def run_batch():
    # The batch itself is slowed down but never throttled: its items are, one by one.
    delay(None)
    items = _valid_items(request.get_json(silent=True))
    outcomes = {}
    answers = []
    for item in _in_dependency_order(items):
        key = item["id"].lower()
        failed_dependency = any(not _succeeded(outcomes[dep.lower()]) for dep in item.get("dependsOn") or [])
        answer = {"id": item["id"], "status": 424} if failed_dependency else _run_item(item)
        outcomes[key] = answer
        answers.append(answer)
    return jsonify({"responses": answers})


def _valid_items(body):
    items = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise GraphProblem(400, "BadRequest", "Invalid batch payload format: a 'requests' list is required.")
    if len(items) > BATCH_LIMIT:
        raise GraphProblem(400, "BadRequest", f"Invalid batch payload: at most {BATCH_LIMIT} requests are allowed.")
    seen = set()
    for item in items:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) and item[k] for k in ("id", "method", "url")
        ):
            raise GraphProblem(400, "BadRequest", "Each batch request needs an id, a method and a url.")
        if item["id"].lower() in seen:
            raise GraphProblem(400, "BadRequest", f"Batch request ids must be unique: {item['id']!r} repeats.")
        seen.add(item["id"].lower())
        if item["url"].lower().startswith(("http://", "https://")):
            raise GraphProblem(400, "BadRequest", "Batch request urls must be relative, e.g. /me/events.")
        if "body" in item and not {k.lower() for k in (item.get("headers") or {})} & {"content-type"}:
            raise GraphProblem(
                400, "BadRequest", f"Batch request {item['id']!r} has a body but no Content-Type header."
            )
    for item in items:
        unknown = [dep for dep in item.get("dependsOn") or [] if str(dep).lower() not in seen]
        if unknown:
            raise GraphProblem(400, "BadRequest", f"Batch request {item['id']!r} depends on unknown ids {unknown}.")
    return items


def _in_dependency_order(items):
    """Items in the given order, except that each waits for the items it depends on."""
    by_id = {item["id"].lower(): item for item in items}
    ordered, placed, visiting = [], set(), set()

    def place(item):
        key = item["id"].lower()
        if key in placed:
            return
        if key in visiting:
            raise GraphProblem(400, "BadRequest", "Batch requests depend on each other in a circle.")
        visiting.add(key)
        for dep in item.get("dependsOn") or []:
            place(by_id[str(dep).lower()])
        placed.add(key)
        ordered.append(item)

    for item in items:
        place(item)
    return ordered


def _run_item(item):
    url = item["url"] if item["url"].startswith("/") else "/" + item["url"]
    if url.split("?")[0].lower() == "/$batch":
        return {
            "id": item["id"],
            "status": 400,
            "body": {"error": {"code": "BadRequest", "message": "Batches cannot nest."}},
        }
    headers = dict(item.get("headers") or {})
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    data = json.dumps(item["body"]) if item.get("body") is not None else None
    client = current_app.test_client()
    response = client.open(
        "/v1.0" + url,
        method=item["method"].upper(),
        headers=headers,
        data=data,
        environ_overrides={"fakegraph.batch_item": True},
    )
    answer = {
        "id": item["id"],
        "status": response.status_code,
        "headers": {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers},
    }
    if response.data:
        answer["body"] = response.get_json(silent=True) if response.is_json else response.get_data(as_text=True)
    return answer


def _succeeded(answer):
    return 200 <= answer["status"] < 300
