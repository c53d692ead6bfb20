"""Commits that don't wait for PostgreSQL to flush its log to disk.

For writes the portal can make again from their source: the webhook's queued syncs
(the polling fallback syncs every room anyway) and an inbound sync's pages (bookings
mirror Outlook, and the delta token that marks progress is stored only after the round's
last page, so a lost page is read and applied again). With synchronous_commit off for the
transaction, PostgreSQL acknowledges the commit before its log reaches the disk; if the
database server itself crashes, the last fraction of a second of such commits may be
lost, never corrupted or reordered, and a crash of the portal loses nothing. On SQLite
every commit already works this way (WAL with synchronous=NORMAL, app/database/sqlite.py).
"""

from sqlalchemy import text

from app.extensions import db


def commit_without_waiting_for_the_disk():
    """Commit the session's transaction; on PostgreSQL, without waiting for the log flush."""
    session = db.session()
    if session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    session.commit()
