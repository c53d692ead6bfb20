"""Organisation scoping: the one place that decides what the signed-in user may see.

Objects of another organisation answer 404, never 403, so an admin cannot even learn
that they exist.
"""

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from app.extensions import db
from app.models import Organisation


def support_required(view):
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_support:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def organisation_or_404(organisation_id):
    if not current_user.is_authenticated or not current_user.can_access(organisation_id):
        abort(404)
    return db.get_or_404(Organisation, organisation_id)


def in_organisation_or_404(model, organisation, object_id):
    """Load one row of `model` by id, only when it belongs to `organisation`."""
    row = db.session.get(model, object_id)
    if row is None or row.organisation_id != organisation.id:
        abort(404)
    return row


def visible_organisations():
    query = db.select(Organisation).order_by(Organisation.name)
    if not current_user.is_support:
        query = query.where(Organisation.id == current_user.organisation_id)
    return query
