"""Configuration read from the environment.

`instance/config.py`, when present, overrides these values (see create_app).
SECRET_KEY and ENCRYPTION_KEY left unset are generated on first start and kept
in the instance folder, so sessions and stored secrets survive restarts.
"""

import os


def normalise_database_url(url):
    """Point plain PostgreSQL URLs at the psycopg 3 driver that requirements.txt installs."""
    if not url:
        return url
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _flag(name, default):
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def positive_days(name, value):
    """`value` as a whole number of days above 0; anything else is refused with a message naming `name`."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"{name} must be a whole number of days above 0, not {value!r}")
    return int(text)


def _days(name, default):
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return positive_days(name, value)


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY")
    ENCRYPTION_KEY = os.environ.get("ENCRYPTION_KEY")
    SQLALCHEMY_DATABASE_URI = normalise_database_url(os.environ.get("DATABASE_URL"))
    GRAPH_BASE_URL = os.environ.get("GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0")
    MS_LOGIN_BASE_URL = os.environ.get("MS_LOGIN_BASE_URL", "https://login.microsoftonline.com")
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = os.environ.get("SESSION_COOKIE_SECURE", "").lower() in ("1", "true", "yes")
    # REMEMBER_COOKIE_SECURE, unless set, follows SESSION_COOKIE_SECURE (see create_app).
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    # Reverse proxies in front of the portal that append X-Forwarded-For. With 0 the address
    # the connection comes from is the client's, so a client cannot claim another one.
    FORWARDED_FOR_PROXIES = int(os.environ.get("FORWARDED_FOR_PROXIES", "0"))
    # Sign-in throttling (app/auth/throttle.py): attempts that sign nobody in are counted.
    RATELIMIT_ENABLED = _flag("RATELIMIT_ENABLED", True)
    # memory:// counts per process (per gunicorn worker); redis://host:6379/0 counts for all.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    # When Redis is unreachable each process counts on its own rather than refusing every sign-in.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    LOGIN_RATE_LIMIT_PER_ACCOUNT = os.environ.get("LOGIN_RATE_LIMIT_PER_ACCOUNT", "5/minute;20/hour")
    LOGIN_RATE_LIMIT_PER_ADDRESS = os.environ.get("LOGIN_RATE_LIMIT_PER_ADDRESS", "10/minute;50/hour")
    # Graph batches notifications; a megabyte holds hundreds of them with room to spare.
    WEBHOOK_MAX_BYTES = int(os.environ.get("WEBHOOK_MAX_BYTES", str(1024 * 1024)))
    SYNC_PAGE_SIZE = int(os.environ.get("SYNC_PAGE_SIZE", "100"))

    # Background jobs and the scheduler (see README, "Background jobs and the scheduler").
    # Off on a web-only host: gunicorn workers then start no runner; `flask scheduler run` still works.
    SCHEDULER_ENABLED = _flag("SCHEDULER_ENABLED", True)
    JOB_WORKERS = int(os.environ.get("JOB_WORKERS", "4"))
    # Each job thread and each request thread of a process may hold a connection at once.
    SQLALCHEMY_ENGINE_OPTIONS = {
        "pool_pre_ping": True,
        "pool_size": JOB_WORKERS + int(os.environ.get("GUNICORN_THREADS", "4")) + 2,
    }
    JOB_MAX_ATTEMPTS = int(os.environ.get("JOB_MAX_ATTEMPTS", "8"))
    JOB_LEASE_SECONDS = float(os.environ.get("JOB_LEASE_SECONDS", "300"))
    JOB_POLL_SECONDS = float(os.environ.get("JOB_POLL_SECONDS", "2"))
    # A dead holder's lease runs out, then another runner's next tick takes it: the periodic
    # jobs pause for at most lease + tick, which must stay within the minute the README promises.
    SCHEDULER_LEASE_SECONDS = float(os.environ.get("SCHEDULER_LEASE_SECONDS", "45"))
    SCHEDULER_TICK_SECONDS = float(os.environ.get("SCHEDULER_TICK_SECONDS", "10"))
    # Below gunicorn's graceful_timeout, so running jobs finish before the master kills the worker.
    SCHEDULER_SHUTDOWN_GRACE_SECONDS = float(os.environ.get("SCHEDULER_SHUTDOWN_GRACE_SECONDS", "20"))
    # History kept before the daily prune deletes it (app/jobs/retention.py).
    SYNC_LOG_RETENTION_DAYS = _days("SYNC_LOG_RETENTION_DAYS", 90)
    AUDIT_LOG_RETENTION_DAYS = _days("AUDIT_LOG_RETENTION_DAYS", 730)

    # Alerts (see README, "Alerts and metrics"): when a condition becomes an incident.
    ALERT_LINK_FAILING_MINUTES = float(os.environ.get("ALERT_LINK_FAILING_MINUTES", "60"))
    ALERT_LINK_FAILING_SYNCS = int(os.environ.get("ALERT_LINK_FAILING_SYNCS", "5"))
    ALERT_SUBSCRIPTION_MINUTES = float(os.environ.get("ALERT_SUBSCRIPTION_MINUTES", "60"))
    ALERT_WEBHOOK_SILENT_HOURS = float(os.environ.get("ALERT_WEBHOOK_SILENT_HOURS", "24"))
    ALERT_QUEUE_BACKLOG_JOBS = int(os.environ.get("ALERT_QUEUE_BACKLOG_JOBS", "500"))
    ALERT_QUEUE_BACKLOG_MINUTES = float(os.environ.get("ALERT_QUEUE_BACKLOG_MINUTES", "15"))
    ALERT_SCHEDULER_MINUTES = float(os.environ.get("ALERT_SCHEDULER_MINUTES", "5"))
    ALERT_REMIND_HOURS = float(os.environ.get("ALERT_REMIND_HOURS", "24"))
    # Alert e-mail; without SMTP_HOST e-mail is off and the portal says so.
    SMTP_HOST = os.environ.get("SMTP_HOST", "").strip() or None
    # Empty: 587 with starttls, 465 with ssl, 25 without TLS.
    SMTP_PORT = int(os.environ["SMTP_PORT"]) if os.environ.get("SMTP_PORT", "").strip() else None
    SMTP_TLS = os.environ.get("SMTP_TLS", "starttls").strip().lower()
    SMTP_USERNAME = os.environ.get("SMTP_USERNAME") or None
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD") or None
    ALERT_SENDER = os.environ.get("ALERT_SENDER") or None
    # Alert webhooks reach only the public internet unless this opens loopback and private
    # networks, e.g. for an alert relay inside the installation's own network.
    ALERT_WEBHOOK_ALLOW_PRIVATE = _flag("ALERT_WEBHOOK_ALLOW_PRIVATE", False)
    # GET /metrics: a bearer token, and/or the networks that may scrape without one.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None
    METRICS_ALLOW = os.environ.get("METRICS_ALLOW", "127.0.0.1/32,::1/128")


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key"
    # A fixed Fernet key keeps tests independent of the instance folder.
    ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0wMDAwMDAwMDAwMDA="
    WTF_CSRF_ENABLED = False
    GRAPH_BASE_URL = "https://graph.test/v1.0"
    MS_LOGIN_BASE_URL = "https://login.test"
    PUBLIC_BASE_URL = "https://portal.test"
    # Tests turn these on themselves; a developer's environment must not reach them.
    RATELIMIT_ENABLED = False
    RATELIMIT_STORAGE_URI = "memory://"
    SMTP_HOST = None
    ALERT_WEBHOOK_ALLOW_PRIVATE = False
    METRICS_TOKEN = None
    METRICS_ALLOW = "127.0.0.1/32,::1/128"
