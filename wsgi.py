import gc
import os

from app import create_app

# INSTANCE_PATH moves the instance folder (generated keys, the SQLite default) out of the checkout.
app = create_app(instance_path=os.environ.get("INSTANCE_PATH") or None)

# What importing and creating the app made lives as long as the process. Frozen, the
# collector stops walking it, so a full collection, which stops every thread of the
# worker, walks only what requests allocate.
gc.collect()
gc.freeze()
