"""Real HTTP servers on 127.0.0.1 for tests that need the network between two apps, and bounded waiting."""

import contextlib
import threading
import time

from werkzeug.serving import make_server


@contextlib.contextmanager
def serving(wsgi_app):
    """Serve *wsgi_app* on a free port of 127.0.0.1 in a thread; yield its base URL, shut down after."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    # A short poll interval lets shutdown() return at once instead of after half a second.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"serve-{server.server_port}", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def eventually(check, timeout=10.0, interval=0.02, message=None):
    """Call *check* until it returns something truthy and return that; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"still not true after {timeout} s: {getattr(check, '__name__', check)}")
        time.sleep(interval)
