"""SQLite needs WAL and a busy timeout to serve several gunicorn workers and the scheduler.

Without them concurrent writers fail at once with "database is locked"; foreign keys are
off by default in SQLite and the schema relies on their cascades. In WAL mode,
synchronous=NORMAL syncs the log at checkpoints rather than at every commit: a commit
survives the process dying, and only a power cut can take back the last few, which is
what SQLite's documentation recommends for WAL.
"""

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, connection_record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
