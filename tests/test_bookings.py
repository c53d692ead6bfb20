import re
from datetime import UTC, datetime

import pytest

from app.bookings.validation import validate_booking
from app.extensions import db
from app.models import Booking


def field_errors(response, field):
    """The error texts shown right under one form field."""
    return re.findall(rf'<p class="error" id="{field}-error">([^<]+)</p>', response.get_data(as_text=True))


def booking_data(world, start, end, status="Confirmed", **extra):
    return {
        "object_id": world.a.object,
        "customer_id": world.a.customer,
        "status_id": world.a.statuses[status],
        "start_at": start,
        "end_at": end,
        "remark": "Team meeting",
        **extra,
    }


def stored_bookings(app):
    with app.app_context():
        return db.session.scalars(db.select(Booking).order_by(Booking.id)).all()


def test_a_booking_is_stored_in_utc_from_the_organisations_local_time(app, login, world):
    client = login(world.a.admin)
    # 1 July is summer time in Amsterdam (UTC+2), 1 December winter time (UTC+1).
    client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "2026-07-01T10:00", "2026-07-01T11:30"))
    client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "2026-12-01T10:00", "2026-12-01T11:30"))
    summer, winter = stored_bookings(app)
    assert summer.start_at == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert winter.start_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert (summer.channel, summer.remark, summer.customer_id) == ("backoffice", "Team meeting", world.a.customer)

    listed = client.get(f"/orgs/{world.a.org}/bookings?start=2026-12-01&end=2026-12-01").get_data(as_text=True)
    assert "2026-12-01 10:00" in listed and "2026-07-01" not in listed


def test_an_overlapping_booking_is_refused_next_to_the_start_field(app, login, world):
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "2026-12-01T10:00", "2026-12-01T11:00"))
    response = client.post(
        f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "2026-12-01T10:30", "2026-12-01T12:00")
    )
    assert response.status_code == 200
    errors = field_errors(response, "start_at")
    assert len(errors) == 1
    assert "Overlaps booking" in errors[0] and "2026-12-01 10:00 to 11:00" in errors[0]
    assert len(stored_bookings(app)) == 1


def test_an_end_before_the_start_is_refused_next_to_the_end_field(app, login, world):
    client = login(world.a.admin)
    response = client.post(
        f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "2026-12-01T10:00", "2026-12-01T09:00")
    )
    assert field_errors(response, "end_at") == ["The end must be after the start."]
    assert stored_bookings(app) == []


def test_missing_times_are_reported_per_field(login, world):
    client = login(world.a.admin)
    response = client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "", "not a time"))
    assert field_errors(response, "start_at") == ["Enter a start time."]
    assert field_errors(response, "end_at")


def test_a_refused_edit_leaves_the_stored_booking_unchanged(app, login, world):
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "2026-12-01T10:00", "2026-12-01T11:00"))
    client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "2026-12-01T12:00", "2026-12-01T13:00"))
    first, second = stored_bookings(app)
    response = client.post(
        f"/orgs/{world.a.org}/bookings/{second.id}/edit",
        data=booking_data(world, "2026-12-01T10:30", "2026-12-01T13:00", remark="moved"),
    )
    assert field_errors(response, "start_at")
    unchanged = stored_bookings(app)[1]
    assert (unchanged.start_at, unchanged.remark) == (second.start_at, "Team meeting")


def test_editing_a_booking_does_not_clash_with_itself(app, login, world):
    client = login(world.a.admin)
    client.post(f"/orgs/{world.a.org}/bookings/new", data=booking_data(world, "2026-12-01T10:00", "2026-12-01T11:00"))
    booking = stored_bookings(app)[0]
    response = client.post(
        f"/orgs/{world.a.org}/bookings/{booking.id}/edit",
        data=booking_data(world, "2026-12-01T10:30", "2026-12-01T11:30"),
    )
    assert response.status_code == 302
    assert stored_bookings(app)[0].end_at == datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


def make_booking(world, start_hour, end_hour, status="Confirmed", object_id=None):
    return Booking(
        organisation_id=world.a.org,
        object_id=object_id or world.a.object,
        status_id=world.a.statuses[status],
        start_at=datetime(2026, 12, 1, start_hour, tzinfo=UTC),
        end_at=datetime(2026, 12, 1, end_hour, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("existing_status", "new_hours", "new_status", "clashes"),
    [
        ("Confirmed", (10, 12), "Confirmed", True),
        ("Confirmed", (9, 11), "Option", True),
        ("Confirmed", (11, 12), "Confirmed", False),  # touching at 11:00 is not an overlap
        ("Confirmed", (8, 10), "Confirmed", False),
        ("Cancelled", (10, 11), "Confirmed", False),  # a cancelled booking frees its object
        ("Confirmed", (10, 11), "Cancelled", False),  # a cancelled booking occupies nothing
    ],
)
def test_validate_booking_overlap_rules(app, world, existing_status, new_hours, new_status, clashes):
    with app.app_context():
        db.session.add(make_booking(world, 10, 11, existing_status))
        db.session.commit()
        candidate = make_booking(world, *new_hours, new_status)
        errors = validate_booking(candidate)
        assert bool(errors) is clashes
        assert db.session.scalar(db.select(db.func.count()).select_from(Booking)) == 1


def test_validate_booking_ignores_other_objects(app, world):
    from app.models import BookableObject

    with app.app_context():
        other = BookableObject(organisation_id=world.a.org, name="Other room")
        db.session.add_all([other, make_booking(world, 10, 11)])
        db.session.commit()
        assert validate_booking(make_booking(world, 10, 11, object_id=other.id)) == []
