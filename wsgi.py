import gc
import os

from app import create_app

# INSTANCE_PATH moves the instance folder (generated keys, the SQLite default) out of the checkout.
app = create_app(instance_path=os.environ.get("INSTANCE_PATH") or None)

# What importing and creating the app made lives as long as the process. Frozen, the
# collector stops walking it: each full collection used to stop every thread of a
# worker for 50-150 ms, which was the slowest webhook acknowledgements of all.
gc.collect()
gc.freeze()
