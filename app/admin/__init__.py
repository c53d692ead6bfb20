from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.admin import conflicts, discovery, full_sync, health_chart, rooms, routes, status  # noqa: E402,F401
