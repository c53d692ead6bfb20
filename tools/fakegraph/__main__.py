"""Run the stand-in: ``python -m tools.fakegraph --port 8025 --seed demo``.

SIGINT or SIGTERM stops it.
"""

import argparse
import logging
import signal
import sys

from werkzeug.serving import make_server

from . import seed
from .app import create_app, shut_down
from .state import Settings, World


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.fakegraph", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="port to listen on (default 8025; 0 picks a free one)")
    parser.add_argument("--seed", help="'demo' for the built-in demo tenant, or the path of a JSON seed")
    parser.add_argument("--display-timezone", help="zone the control page shows and reads times in")
    parser.add_argument("--notification-delay", type=float, help="seconds between a change and its notification")
    parser.add_argument(
        "--legacy-subscription-limit",
        action="store_true",
        help="refuse subscriptions longer than 4,230 minutes with ExtensionError, as Graph once did",
    )
    parser.add_argument(
        "--strict-refresh-rotation", action="store_true", help="a used refresh token stops working at once"
    )
    parser.add_argument("--quiet", action="store_true", help="log warnings only, not every request")
    options = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING if options.quiet else logging.INFO, format="%(message)s")
    if options.quiet:
        # werkzeug gives its request log a handler of its own unless its level is set.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = Settings()
    if options.legacy_subscription_limit:
        settings.max_subscription_minutes = 4230
    if options.strict_refresh_rotation:
        settings.strict_refresh_rotation = True
    if options.notification_delay is not None:
        settings.notification_delay = options.notification_delay
    app = create_app(World(settings))
    if options.seed:
        seed.load(app, seed.read(options.seed))
    if options.display_timezone:
        settings.display_zone = options.display_timezone

    server = make_server(options.host, options.port, app, threaded=True)
    base = f"http://{options.host}:{server.server_port}"
    print(f"Microsoft 365 stand-in on {base}", flush=True)
    print(f"  GRAPH_BASE_URL={base}/v1.0", flush=True)
    print(f"  MS_LOGIN_BASE_URL={base}/login", flush=True)
    print(f"  control page: {base}/_control/", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        shut_down(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
