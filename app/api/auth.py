"""Bearer-token authentication for every API request; the token decides the organisation."""

from flask import g, request

from app.api import bp
from app.api.bearer_tokens import find_active_token, record_use
from app.api.error_responses import error_response
from app.extensions import db
from app.models import Organisation

REALM = 'Bearer realm="i-Reserve booking API"'


@bp.before_request
def authenticate():
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return _unauthorised("Send an API token in the header 'Authorization: Bearer <token>'.", REALM)
    token = find_active_token(credentials)
    if token is None:
        return _unauthorised("The API token is unknown or has been revoked.", f'{REALM}, error="invalid_token"')
    organisation_id = token.organisation_id
    record_use(token)
    g.api_organisation = db.session.get(Organisation, organisation_id)
    return None


def current_organisation():
    return g.api_organisation


def _unauthorised(message, challenge):
    return error_response(401, message, headers={"WWW-Authenticate": challenge})
