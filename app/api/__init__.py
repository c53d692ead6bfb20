"""The booking API: JSON under /api/v1, authenticated by per-organisation bearer tokens."""

from flask import Blueprint

from app.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Callers authenticate with a bearer token on every request, never with a cookie, so a
# forged cross-site request carries nothing that would let it in.
csrf.exempt(bp)

from app.api import auth, error_responses, routes  # noqa: E402,F401
