"""The database server's clock, which every host of an installation shares.

Leases (the scheduler's and each running job's) are compared on it, so a host whose own
clock runs ahead cannot take over work another host still holds, and one running behind
cannot keep work past its lease.
"""

from datetime import UTC, datetime

from sqlalchemy import text

from app.extensions import db


def database_now():
    """The database server's current time as an aware UTC datetime.

    SQLite runs inside this process, so its clock is this host's clock.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        # clock_timestamp(), not now(): now() stands still for the whole transaction.
        value = db.session.scalar(text("SELECT clock_timestamp()"))
        return value.astimezone(UTC)
    if dialect == "sqlite":
        value = db.session.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return datetime.now(UTC)
