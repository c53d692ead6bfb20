"""Alerts: rules find trouble, incidents carry it until it clears, notifications tell people.

`init_app` adds the template helpers the portal's partials use and the `flask alerts`
commands; the blueprint serves the incident lists.
"""

from flask import Blueprint

bp = Blueprint("alerts", __name__)


def init_app(app):
    from app.alerts import cli, template_helpers

    template_helpers.register(app)
    app.cli.add_command(cli.alerts_group)


from app.alerts import routes  # noqa: E402,F401
