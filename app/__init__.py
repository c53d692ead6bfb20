import logging
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import csrf, db, login_manager, migrate
from config import Config

# Generated secrets live in these instance files when the environment sets none.
GENERATED_SETTINGS = {
    "SECRET_KEY": ("secret_key", lambda: os.urandom(32).hex()),
    "ENCRYPTION_KEY": ("encryption_key", None),
}


def create_app(config_class=Config, instance_path=None):
    """Build the portal. Starts nothing: the scheduler is started by the gunicorn worker hook."""
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    app.config.from_object(config_class)
    if not app.config.get("TESTING"):
        app.config.from_pyfile("config.py", silent=True)
    os.makedirs(app.instance_path, exist_ok=True)
    _ensure_generated_settings(app)
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config.get("SESSION_COOKIE_SECURE", False))
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "ireserve.db")

    _configure_logging(app)
    _trust_forwarded_for(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    from app import security_headers
    from app.auth import throttle

    throttle.init_app(app)
    security_headers.register(app)

    from app import models  # noqa: F401
    from app.admin import bp as admin_bp
    from app.api import bp as api_bp
    from app.api.token_pages import bp as api_tokens_bp
    from app.auth import bp as auth_bp
    from app.database import sqlite  # noqa: F401  (registers the connect listener)
    from app.metrics.healthz import bp as health_bp
    from app.oauth import bp as oauth_bp
    from app.orgs import bp as orgs_bp
    from app.webhook import bp as webhook_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(orgs_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(oauth_bp)
    app.register_blueprint(webhook_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(api_tokens_bp)

    from app import alerts
    from app.metrics import routes as metrics_routes

    app.register_blueprint(alerts.bp)
    alerts.init_app(app)
    metrics_routes.init_app(app)

    from app import cli, error_pages, formatting, navigation

    error_pages.register(app)
    navigation.register(app)
    cli.register(app)
    from app.sync.cli import sync_group

    app.cli.add_command(sync_group)
    formatting.register(app)
    from app.graph import error_texts

    error_texts.register(app)
    return app


def _ensure_generated_settings(app):
    for name, (filename, make_value) in GENERATED_SETTINGS.items():
        if app.config.get(name):
            continue
        from app.database.encryption import generate_key

        app.config[name] = _read_or_create(os.path.join(app.instance_path, filename), make_value or generate_key)


def _read_or_create(path, make_value):
    """Create the file exclusively so two workers starting together agree on one value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path) as existing:
            value = existing.read().strip()
        if value:
            return value
        # Another process created the file an instant ago and has not written yet.
        import time

        time.sleep(0.2)
        with open(path) as existing:
            return existing.read().strip()
    value = make_value()
    with os.fdopen(fd, "w") as new:
        new.write(value)
    return value


def _trust_forwarded_for(app):
    """Behind FORWARDED_FOR_PROXIES proxies the client address is taken from X-Forwarded-For.

    Sign-in throttling and METRICS_ALLOW go by that address; without this every request
    behind a proxy would seem to come from the proxy.
    """
    proxies = int(app.config.get("FORWARDED_FOR_PROXIES") or 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=0)


def _configure_logging(app):
    level = getattr(logging, str(app.config.get("LOG_LEVEL", "INFO")).upper(), logging.INFO)
    app.logger.setLevel(level)
    # requests-oauthlib logs request bodies and token responses at DEBUG: never let them through.
    for noisy in ("requests_oauthlib", "oauthlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
