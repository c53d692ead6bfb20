from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.auth import people_routes, routes  # noqa: E402,F401
