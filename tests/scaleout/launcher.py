"""The portal as one instance of the scale-out tests serves it: `gunicorn ... tests.scaleout.launcher:app`.

The instance folder is the one SCALEOUT_INSTANCE_PATH names, so key files or a SQLite
database in the repository's `instance/` never reach the instance under test; everything
else comes from the environment, exactly as for `wsgi:app`.

With SCALEOUT_PROBE_FILE set, one more periodic job runs every half second and appends
"<unix time> <pid>" to that file. The product's own periodic jobs run minutes apart, too
rarely for a test to watch which process runs them; the probe goes through the same
slots, the same runner and the same lease.
"""

import os
import time
from datetime import timedelta

from app import create_app
from app.scheduler import periodic

PROBE_SLOT = "scaleout_probe"
PROBE_EVERY = timedelta(seconds=0.5)


def _install_probe(path):
    periodic.SLOTS[PROBE_SLOT] = PROBE_EVERY

    @periodic.periodic(PROBE_SLOT)
    def probe(now):
        # One short write per line on an O_APPEND file: lines of several processes never mix.
        with open(path, "a") as log:
            log.write(f"{time.time():.3f} {os.getpid()}\n")


if os.environ.get("SCALEOUT_PROBE_FILE"):
    _install_probe(os.environ["SCALEOUT_PROBE_FILE"])

app = create_app(instance_path=os.environ["SCALEOUT_INSTANCE_PATH"])
