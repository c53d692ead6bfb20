"""gunicorn settings for the portal; `BIND` and `WEB_CONCURRENCY` override the defaults."""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 60
accesslog = "-"
# Load the app in each worker, never in the master: pooled database connections must
# not cross a fork.
preload_app = False
