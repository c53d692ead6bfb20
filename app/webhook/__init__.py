from flask import Blueprint

from app.extensions import csrf

bp = Blueprint("webhook", __name__, url_prefix="/webhooks/graph")
# Microsoft posts here; it cannot carry a form token. clientState authenticates instead.
csrf.exempt(bp)

from app.webhook import routes  # noqa: E402,F401
