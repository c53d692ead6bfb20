"""The schema comes from migrations outside tests; they must build exactly what the models describe."""

import json
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from app.models import BookableObject, Booking, BookingStatus, CalendarLink, Integration
from app.models.integration import AUTH_APPLICATION
from app.orgs.provisioning import create_organisation
from tests.conftest import BACKENDS, config_for, database_for


@pytest.fixture(params=BACKENDS)
def empty_database_app(request, tmp_path_factory):
    with database_for(request.param, tmp_path_factory, prefix="m") as url:
        app = create_app(config_for(url), instance_path=str(tmp_path_factory.mktemp("instance")))
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()


def table_names():
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def schema_differences():
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_upgrade_from_empty_builds_the_models_schema(empty_database_app):
    upgrade()
    assert table_names() == set(db.metadata.tables)
    assert schema_differences() == []


def test_downgrade_and_upgrade_round_trip(empty_database_app):
    upgrade()
    downgrade(revision="base")
    assert table_names() == set()
    upgrade()
    assert schema_differences() == []


def test_the_unique_event_id_upgrade_keeps_the_oldest_link_and_logs_each_unlinked_booking(empty_database_app):
    upgrade(revision="0009")
    organisation = create_organisation("Alpha")
    other = create_organisation("Beta")
    option = db.session.scalar(
        db.select(BookingStatus.id).where(
            BookingStatus.organisation_id == organisation.id, BookingStatus.name == "Option"
        )
    )
    other_option = db.session.scalar(
        db.select(BookingStatus.id).where(BookingStatus.organisation_id == other.id, BookingStatus.name == "Option")
    )
    room = BookableObject(organisation_id=organisation.id, name="Room A")
    other_room = BookableObject(organisation_id=other.id, name="Room B")
    db.session.add_all([room, other_room])
    db.session.flush()
    integration = Integration(organisation_id=organisation.id, name="Rooms", auth_mode=AUTH_APPLICATION)
    db.session.add(integration)
    db.session.flush()
    # Core, not the model: the model has columns later revisions add.
    link_id = db.session.execute(
        db.insert(CalendarLink.__table__)
        .values(integration_id=integration.id, mailbox="room-a@contoso.example", object_id=room.id, enabled=True)
        .returning(CalendarLink.__table__.c.id)
    ).scalar_one()

    def booking(org, object_id, status, day, created_day, event_id):
        row = Booking(
            organisation_id=org,
            object_id=object_id,
            status_id=status,
            start_at=datetime(2026, 12, day, 9, tzinfo=UTC),
            end_at=datetime(2026, 12, day, 10, tzinfo=UTC),
            extra={"outlook_event_id": event_id} if event_id else {},
            created_at=datetime(2026, 11, created_day, tzinfo=UTC),
        )
        db.session.add(row)
        db.session.flush()
        return row.id

    newer = booking(organisation.id, room.id, option, 1, 20, "ev-shared")
    oldest = booking(organisation.id, room.id, option, 2, 10, "ev-shared")
    newest = booking(organisation.id, room.id, option, 3, 25, "ev-shared")
    alone = booking(organisation.id, room.id, option, 4, 10, "ev-alone")
    elsewhere = booking(other.id, other_room.id, other_option, 1, 5, "ev-shared")
    db.session.commit()

    upgrade()

    linked = dict(db.session.execute(db.text("SELECT id, extra FROM bookings")).all())
    event_ids = {
        booking_id: (extra if isinstance(extra, dict) else json.loads(extra)).get("outlook_event_id")
        for booking_id, extra in linked.items()
    }
    assert event_ids == {oldest: "ev-shared", newer: None, newest: None, alone: "ev-alone", elsewhere: "ev-shared"}
    log = db.session.execute(
        db.text(
            "SELECT booking_id, integration_id, link_id, event_id, action, reason FROM sync_log ORDER BY booking_id"
        )
    ).all()
    assert [(row[0], row[1], row[2], row[3], row[4]) for row in log] == [
        (newer, integration.id, link_id, "ev-shared", "unlink"),
        (newest, integration.id, link_id, "ev-shared", "unlink"),
    ]
    assert all(f"booking {oldest} is linked to the same Outlook event" in row[5] for row in log)
    assert schema_differences() == []
