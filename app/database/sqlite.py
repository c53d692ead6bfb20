"""SQLite needs WAL and a busy timeout to serve several gunicorn workers and the scheduler.

Without them concurrent writers fail at once with "database is locked"; foreign keys are
off by default in SQLite and the schema relies on their cascades. In WAL mode,
synchronous=NORMAL syncs the log at checkpoints rather than at every commit: a commit
survives the process dying, and only a power cut can take back the last few, which is
what SQLite's documentation recommends for WAL.
"""

import sqlite3
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

BUSY_TIMEOUT_MS = 10000
# How long a prompt writer sleeps between asks for the write lock.
PROMPT_RETRY_SECONDS = 0.0005


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, connection_record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def begin_writing_promptly(session):
    """On SQLite, open `session`'s transaction with the write lock taken, asking for it often.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms and more between its
    tries, so a writer that found the lock taken a few times in a row sleeps through the
    moments it is free while the job runner keeps taking it in short spells. Asking every
    half millisecond instead (as long as the busy timeout allows) takes the lock within a
    moment of its release, so the webhook's one small insert waits hardly longer than
    the lock is held. Nothing happens on other databases, or when the session's
    transaction has already begun writing.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite" or connection.connection.dbapi_connection.in_transaction:
        return
    connection.exec_driver_sql("PRAGMA busy_timeout=0")
    give_up_at = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    try:
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as error:
                if "locked" not in str(error.orig) or time.monotonic() >= give_up_at:
                    raise
                time.sleep(PROMPT_RETRY_SECONDS)
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
