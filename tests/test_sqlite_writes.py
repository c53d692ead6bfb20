"""SQLite: the webhook takes the write lock as soon as another writer lets go of it."""

import sqlite3
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from app import create_app
from app.database import sqlite
from app.database.sqlite import begin_writing_promptly
from app.extensions import db
from app.jobs import queue
from tests.conftest import config_for


@pytest.fixture
def sqlite_app(tmp_path):
    path = tmp_path / "portal.db"
    app = create_app(config_for(f"sqlite:///{path}"), instance_path=str(tmp_path / "instance"))
    with app.app_context():
        db.create_all()
    yield app, path
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def hold_write_lock(path, seconds):
    """Another process's writer: takes the lock now, lets go after `seconds` in a thread."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release():
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    releaser = threading.Thread(target=release)
    releaser.start()
    return releaser


def busy_timeout(app):
    return db.session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()


def test_a_writer_waits_for_the_lock_then_writes(sqlite_app):
    app, path = sqlite_app
    with app.app_context():
        releaser = hold_write_lock(path, 0.3)
        begin_writing_promptly(db.session)
        assert db.session.connection().connection.dbapi_connection.in_transaction
        queue.ensure_queued("sync_link", ["7"])
        db.session.commit()
        releaser.join()
        assert queue.state_counts()["due"] == 1
        assert busy_timeout(app) == sqlite.BUSY_TIMEOUT_MS


def test_a_lock_never_released_fails_after_the_busy_timeout_and_writes_nothing(sqlite_app, monkeypatch):
    app, path = sqlite_app
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_MS", 200)
    with app.app_context():
        releaser = hold_write_lock(path, 1.0)
        with pytest.raises(OperationalError, match="locked"):
            begin_writing_promptly(db.session)
        db.session.rollback()
        assert busy_timeout(app) == 200
        releaser.join()
        assert queue.state_counts()["due"] == 0


def test_an_open_write_transaction_is_joined_as_it_is(sqlite_app):
    app, _ = sqlite_app
    with app.app_context():
        queue.ensure_queued("sync_link", ["1"])
        begin_writing_promptly(db.session)  # already holds the lock: nothing to take
        queue.ensure_queued("sync_link", ["2"])
        db.session.rollback()
        assert queue.state_counts()["due"] == 0
