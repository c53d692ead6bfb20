"""Commits of re-creatable writes: committed for every reader, without the log flush on PostgreSQL."""

from sqlalchemy import event, text

from app.database.quick_commit import commit_without_waiting_for_the_disk
from app.extensions import db
from app.jobs import queue


def test_the_writes_are_committed_with_the_log_flush_left_to_the_server(app):
    setting_at_commit = []

    def note_setting(session):
        if session.get_bind().dialect.name == "postgresql":
            setting_at_commit.append(session.execute(text("SHOW synchronous_commit")).scalar())

    with app.app_context():
        session = db.session()
        event.listen(session, "before_commit", note_setting)
        try:
            queue.ensure_queued("sync_link", ["1", "2"])
            commit_without_waiting_for_the_disk()
        finally:
            event.remove(session, "before_commit", note_setting)
        dialect = db.engine.dialect.name
        db.session.remove()
        with db.engine.connect() as elsewhere:
            assert elsewhere.execute(text("SELECT count(*) FROM jobs")).scalar() == 2
        if dialect == "postgresql":
            assert setting_at_commit == ["off"]
            # Only that transaction: the pooled connection is back to the server's setting.
            with db.engine.connect() as later:
                assert later.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_with_nothing_begun_it_is_a_plain_commit(app):
    with app.app_context():
        commit_without_waiting_for_the_disk()
        assert not db.session().in_transaction()
