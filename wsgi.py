import os

from app import create_app

# INSTANCE_PATH moves the instance folder (generated keys, the SQLite default) out of the checkout.
app = create_app(instance_path=os.environ.get("INSTANCE_PATH") or None)
