"""Every API answer that is not a success: JSON `{"error": ..., "fields": {...}}`, never an HTML page."""

from flask import current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from app.api import bp
from app.extensions import db

# The portal's handlers render HTML pages for these codes; inside the API they answer JSON.
HTML_HANDLED_CODES = (400, 404, 405, 413, 415, 500)


class ApiError(Exception):
    """Raised inside an API view to answer `status` with a reason and, per field, what is wrong."""

    def __init__(self, status, message, fields=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


def error_response(status, message, fields=None, headers=None):
    response = jsonify(error=message, fields=fields or {})
    response.status_code = status
    response.headers.update(headers or {})
    return response


@bp.errorhandler(ApiError)
def api_error(error):
    return error_response(error.status, error.message, error.fields, error.headers)


@bp.errorhandler(HTTPException)
def http_error(error):
    if error.code >= 500:
        return server_error(error)
    headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else None
    return error_response(error.code, error.description or error.name, headers=headers)


def server_error(error):
    # A failed request must not leave a half-written change in the session.
    db.session.rollback()
    current_app.logger.error("Unhandled error on %s %s", request.method, request.path)
    return error_response(500, "Something went wrong on our side; nothing was changed. Try again later.")


for _code in HTML_HANDLED_CODES:
    bp.register_error_handler(_code, server_error if _code == 500 else http_error)
