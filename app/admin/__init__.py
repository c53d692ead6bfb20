from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.admin import discovery, full_sync, rooms, routes, status  # noqa: E402,F401
