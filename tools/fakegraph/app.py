"""The stand-in as one Flask app: Graph under `/v1.0`, the identity platform under `/login`.

Point the portal at it with ``GRAPH_BASE_URL=http://HOST:PORT/v1.0`` and
``MS_LOGIN_BASE_URL=http://HOST:PORT/login``; `/_control/` sets the stage.
"""

import time
from datetime import UTC, datetime

from flask import Flask, request

from . import batch, control, graph, identity, places, subscriptions
from .access import GraphProblem, problem_response, request_ids
from .state import World


def create_app(the_world=None):
    """Build the stand-in around *the_world* (a fresh, empty one by default)."""
    app = Flask(__name__)
    app.json.sort_keys = False  # Graph puts @odata.* annotations first; so do we.
    use_world(app, the_world or World())

    for blueprint in (identity.bp, graph.bp, places.bp, subscriptions.bp, batch.bp, control.bp):
        app.register_blueprint(blueprint)

    app.register_error_handler(GraphProblem, problem_response)

    @app.errorhandler(404)
    @app.errorhandler(405)
    def unknown_route(error):
        if not request.path.startswith("/v1.0/"):
            return error
        segment = request.path.rstrip("/").rsplit("/", 1)[-1]
        return problem_response(GraphProblem(400, "BadRequest", f"Resource not found for the segment '{segment}'."))

    @app.before_request
    def start_clock():
        request.environ["fakegraph.started"] = time.monotonic()

    @app.after_request
    def stamp_and_log(response):
        if request.path.startswith("/v1.0"):
            request_id, client_request_id = request_ids()
            response.headers["request-id"] = request_id
            if client_request_id:
                response.headers["client-request-id"] = client_request_id
        if not request.path.startswith("/_control"):
            app.extensions["fakegraph"].log_request(
                {
                    "at": datetime.now(UTC).isoformat(),
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string.decode(errors="replace"),
                    "status": response.status_code,
                    "batch_item": bool(request.environ.get("fakegraph.batch_item")),
                    "seconds": round(time.monotonic() - request.environ.get("fakegraph.started", time.monotonic()), 4),
                }
            )
        return response

    return app


def use_world(app, the_world):
    """Serve *the_world* from now on; the previous world's notifications stop.

    Building the app compiles a few dozen URL rules, so tests build it once and give each
    test a fresh world instead.
    """
    previous = app.extensions.get("fakegraph")
    if previous is not None and previous.notifier is not None:
        previous.notifier.stop()
    if the_world.notifier is None:
        the_world.notifier = subscriptions.Notifier(the_world)
    app.extensions["fakegraph"] = the_world
    return the_world


def shut_down(app):
    """Stop the notification thread of *app*'s world (deliveries due later are dropped)."""
    notifier = app.extensions["fakegraph"].notifier
    if notifier is not None:
        notifier.stop()
