from flask import render_template, request
from flask_wtf.csrf import CSRFError

from app.extensions import db


def register(app):
    @app.errorhandler(404)
    def not_found(error):
        return render_template("errors/404.html"), 404

    @app.errorhandler(400)
    def bad_request(error):
        return render_template("errors/400.html", reason=error.description), 400

    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        return render_template(
            "errors/400.html", reason="The form expired. Go back, reload the page and try again."
        ), 400

    @app.errorhandler(500)
    def server_error(error):
        # A failed request must not leave a half-written change in the session.
        db.session.rollback()
        app.logger.error("Unhandled error on %s %s", request.method, request.path)
        return render_template("errors/500.html"), 500
