from datetime import UTC, datetime, timedelta

import pytest

from app.api.bearer_tokens import create_token, revoke_token
from app.extensions import db
from app.models import ApiToken, BookableObject, Booking, CalendarLink, Customer, Integration, Job
from app.models.integration import AUTH_DELEGATED, CONNECTION_CONNECTED
from app.outbound.trigger import OUTBOUND_BOOKING, outbound_key


class Api:
    """A test client that sends one organisation's token with every request."""

    def __init__(self, client, secret):
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"}

    def get(self, path, **kwargs):
        return self.client.get("/api/v1" + path, headers=self.headers, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.client.post("/api/v1" + path, json=body, headers=self.headers, **kwargs)

    def patch(self, path, body=None, **kwargs):
        return self.client.patch("/api/v1" + path, json=body, headers=self.headers, **kwargs)


def token_for(app, org_id, name="Test system"):
    with app.app_context():
        _, secret = create_token(org_id, name)
        db.session.commit()
        return secret


@pytest.fixture
def api(app, client, world):
    return Api(client, token_for(app, world.a.org))


def booking_body(world, start="2026-12-01T09:00:00Z", end="2026-12-01T10:00:00Z", status="Confirmed", **extra):
    return {
        "object_id": world.a.object,
        "status_id": world.a.statuses[status],
        "customer_id": world.a.customer,
        "start": start,
        "end": end,
        "remark": "Board meeting",
        **extra,
    }


def stored(app, booking_id):
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        db.session.expunge_all()
        return booking


def count_bookings(app):
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Booking))


# --- Authentication and isolation ------------------------------------------------------------


def test_requests_without_a_valid_token_are_refused(app, client, world):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = client.get("/api/v1/bookings", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = client.get("/api/v1/bookings", headers={"Authorization": "Bearer ireserve_not-a-real-token"})
    assert unknown.status_code == 401
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]

    secret = token_for(app, world.a.org)
    with app.app_context():
        revoke_token(db.session.scalar(db.select(ApiToken)))
        db.session.commit()
    revoked = client.get("/api/v1/bookings", headers={"Authorization": f"Bearer {secret}"})
    assert revoked.status_code == 401
    assert revoked.get_json() == {"error": "The API token is unknown or has been revoked.", "fields": {}}


def test_a_token_sees_only_its_own_organisation(app, client, world, api):
    b_api = Api(client, token_for(app, world.b.org))
    b_body = {**booking_body(world), "object_id": world.b.object, "status_id": world.b.statuses["Confirmed"]}
    b_body["customer_id"] = world.b.customer
    b_booking = b_api.post("/bookings", b_body).get_json()["id"]
    a_booking = api.post("/bookings", booking_body(world)).get_json()["id"]

    for response in (
        api.get(f"/bookings/{b_booking}"),
        api.patch(f"/bookings/{b_booking}", {"remark": "Mine now"}),
        api.post(f"/bookings/{b_booking}/status", {"status_id": world.a.statuses["Cancelled"]}),
    ):
        assert response.status_code == 404
        assert response.get_json() == {"error": f"There is no booking with id {b_booking}.", "fields": {}}
    assert stored(app, b_booking).remark == "Board meeting"

    assert [b["id"] for b in api.get("/bookings?start=2026-01-01").get_json()["data"]] == [a_booking]
    assert [o["id"] for o in api.get("/objects").get_json()["data"]] == [world.a.object]
    assert [c["id"] for c in api.get("/customers").get_json()["data"]] == [world.a.customer]
    assert {s["id"] for s in api.get("/statuses").get_json()["data"]} == set(world.a.statuses.values())


def test_another_organisations_object_status_or_customer_cannot_be_booked(app, api, world):
    response = api.post(
        "/bookings",
        booking_body(
            world, object_id=world.b.object, status_id=world.b.statuses["Confirmed"], customer_id=world.b.customer
        ),
    )
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "The booking is not valid."
    assert body["fields"] == {
        "object_id": f"There is no object with id {world.b.object} in this organisation.",
        "status_id": f"There is no status with id {world.b.statuses['Confirmed']} in this organisation.",
        "customer_id": f"There is no customer with id {world.b.customer} in this organisation.",
    }
    assert count_bookings(app) == 0


# --- Reading ---------------------------------------------------------------------------------


def test_objects_customers_and_statuses_are_listed(api, world):
    assert api.get("/objects").get_json() == {
        "data": [{"id": world.a.object, "name": "Room A", "capacity": 8, "active": True}],
        "next_after_id": None,
    }
    assert api.get("/customers").get_json()["data"] == [
        {"id": world.a.customer, "name": "Customer a", "email": "guest@a.example"}
    ]
    statuses = {s["name"]: s for s in api.get("/statuses").get_json()["data"]}
    assert statuses["Cancelled"] == {
        "id": world.a.statuses["Cancelled"],
        "name": "Cancelled",
        "blocks_object": False,
        "position": statuses["Cancelled"]["position"],
    }
    assert set(statuses) == {"Option", "Confirmed", "Cancelled", "Invoiced"}


def test_a_created_booking_reads_back_in_utc_with_every_part(app, api, world):
    body = booking_body(world, start="2026-12-01T10:00:00+01:00", end="2026-12-01T11:30:00+01:00")
    response = api.post("/bookings", body)
    assert response.status_code == 201
    booking = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/bookings/{booking['id']}")
    assert booking == {
        "id": booking["id"],
        "object": {"id": world.a.object, "name": "Room A"},
        "customer": {"id": world.a.customer, "name": "Customer a", "email": "guest@a.example"},
        "status": {"id": world.a.statuses["Confirmed"], "name": "Confirmed"},
        "start": "2026-12-01T09:00:00Z",
        "end": "2026-12-01T10:30:00Z",
        "remark": "Board meeting",
        "channel": "api",
        "outlook_event_id": None,
        "fields": {},
        "created_at": booking["created_at"],
        "updated_at": booking["updated_at"],
    }
    assert booking["created_at"].endswith("Z") and booking["updated_at"].endswith("Z")
    assert api.get(f"/bookings/{booking['id']}").get_json() == booking
    row = stored(app, booking["id"])
    assert row.start_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert (row.channel, row.organisation_id) == ("api", world.a.org)


def test_a_time_without_offset_is_read_in_the_organisations_time_zone(app, api, world):
    # Amsterdam is UTC+2 in July and UTC+1 in December.
    summer = api.post("/bookings", booking_body(world, start="2026-07-01T10:00", end="2026-07-01T11:00:00"))
    winter = api.post("/bookings", booking_body(world, start="2026-12-01T10:00:00", end="2026-12-01T11:00"))
    assert (summer.get_json()["start"], summer.get_json()["end"]) == ("2026-07-01T08:00:00Z", "2026-07-01T09:00:00Z")
    assert winter.get_json()["start"] == "2026-12-01T09:00:00Z"


def test_the_outlook_event_id_and_free_fields_are_shown(app, api, world):
    booking_id = api.post("/bookings", booking_body(world)).get_json()["id"]
    with app.app_context():
        db.session.add(Integration(organisation_id=world.a.org, name="Desk", ires_field="outlook_ref"))
        booking = db.session.get(Booking, booking_id)
        booking.extra = {"outlook_ref": "AAMkAD=", "po_number": "4711"}
        db.session.commit()
    shown = api.get(f"/bookings/{booking_id}").get_json()
    assert shown["outlook_event_id"] == "AAMkAD="
    assert shown["fields"] == {"outlook_ref": "AAMkAD=", "po_number": "4711"}


def add_bookings(app, world, periods):
    """Bookings on objects of org a, straight into the database; returns their ids in order."""
    with app.app_context():
        ids = []
        for index, (start, end) in enumerate(periods):
            room = BookableObject(organisation_id=world.a.org, name=f"Extra room {index}")
            db.session.add(room)
            db.session.flush()
            booking = Booking(
                organisation_id=world.a.org,
                object_id=room.id,
                status_id=world.a.statuses["Confirmed"],
                start_at=start,
                end_at=end,
            )
            db.session.add(booking)
            db.session.flush()
            ids.append(booking.id)
        db.session.commit()
        return ids


def utc(day, hour, minute=0):
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_bookings_are_listed_when_they_overlap_the_range(app, api, world, clock):
    clock.now = utc(2, 12)
    past, spanning, first_day, second_day, later = add_bookings(
        app,
        world,
        [
            (utc(1, 8), utc(1, 9)),
            (utc(2, 11), utc(2, 13)),  # running now
            (utc(3, 8), utc(3, 9)),
            (utc(4, 8), utc(4, 9)),
            (utc(20, 8), utc(20, 9)),
        ],
    )

    def listed(query=""):
        response = api.get("/bookings" + query)
        assert response.status_code == 200, response.get_json()
        return [b["id"] for b in response.get_json()["data"]]

    assert listed() == [spanning, first_day, second_day, later]  # from now on
    assert listed("?start=2026-12-01&end=2026-12-03") == [past, spanning, first_day]  # whole local days
    assert listed("?start=2026-12-03") == [first_day, second_day, later]
    assert listed("?start=2026-12-02T11:30:00Z&end=2026-12-03T08:00:00Z") == [spanning]  # end excluded
    assert listed("?start=2026-12-02T12:30:00%2B01:00&end=2026-12-04") == [spanning, first_day, second_day]
    # A '+' left unencoded arrives as a space; it is still read as the offset.
    assert listed("?start=2026-12-02T12:30:00+01:00&end=2026-12-04") == [spanning, first_day, second_day]
    # Naive times are local: 10:00 in Amsterdam is 09:00 UTC, when the first booking ends.
    assert listed("?start=2026-12-01T10:00&end=2026-12-01T23:00") == []
    assert listed("?start=2026-12-01T09:59&end=2026-12-01T23:00") == [past]


def test_bookings_come_in_pages_of_limit_following_next_after_id(app, api, world, clock):
    clock.now = utc(1, 0)
    ids = add_bookings(app, world, [(utc(day, 8), utc(day, 9)) for day in range(2, 9)])
    seen, after_id, pages = [], None, 0
    while True:
        query = "?limit=3" + (f"&after_id={after_id}" if after_id else "")
        page = api.get("/bookings" + query).get_json()
        pages += 1
        assert len(page["data"]) <= 3
        seen += [b["id"] for b in page["data"]]
        after_id = page["next_after_id"]
        if after_id is None:
            break
    assert seen == ids and pages == 3
    assert api.get("/bookings?limit=500").get_json()["next_after_id"] is None


@pytest.mark.parametrize(
    "query, field",
    [
        ("?start=tomorrow", "start"),
        ("?end=2026-13-01", "end"),
        ("?start=2026-12-05&end=2026-12-01", "end"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=ten", "limit"),
        ("?after_id=-1", "after_id"),
    ],
)
def test_a_bad_query_is_refused_naming_the_parameter(api, query, field):
    response = api.get("/bookings" + query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "The query is not valid."
    assert list(body["fields"]) == [field]


# --- Writing ---------------------------------------------------------------------------------


def test_a_partial_update_changes_only_the_given_fields(app, api, world):
    booking = api.post("/bookings", booking_body(world)).get_json()
    response = api.patch(f"/bookings/{booking['id']}", {"end": "2026-12-01T11:00:00Z", "remark": "  Longer  "})
    assert response.status_code == 200
    changed = response.get_json()
    assert (changed["end"], changed["remark"]) == ("2026-12-01T11:00:00Z", "Longer")
    unchanged = {key: value for key, value in changed.items() if key not in ("end", "remark", "updated_at")}
    assert unchanged == {key: value for key, value in booking.items() if key not in ("end", "remark", "updated_at")}

    unlinked = api.patch(f"/bookings/{booking['id']}", {"customer_id": None}).get_json()
    assert unlinked["customer"] is None and unlinked["end"] == "2026-12-01T11:00:00Z"

    with app.app_context():
        db.session.get(Booking, booking["id"]).updated_at = datetime(2026, 1, 1, tzinfo=UTC)
        db.session.commit()
    assert api.patch(f"/bookings/{booking['id']}", {}).get_json()["updated_at"] == "2026-01-01T00:00:00Z"
    assert api.patch(f"/bookings/{booking['id']}", {"remark": "Longer"}).get_json()["updated_at"] == (
        "2026-01-01T00:00:00Z"
    )


def test_the_status_is_changed_on_its_own(app, api, world):
    booking = api.post("/bookings", booking_body(world)).get_json()
    response = api.post(f"/bookings/{booking['id']}/status", {"status_id": world.a.statuses["Cancelled"]})
    assert response.status_code == 200
    assert response.get_json()["status"] == {"id": world.a.statuses["Cancelled"], "name": "Cancelled"}
    assert stored(app, booking["id"]).status_id == world.a.statuses["Cancelled"]
    assert response.get_json()["start"] == booking["start"]

    refused = api.post(f"/bookings/{booking['id']}/status", {"status_id": world.b.statuses["Confirmed"], "remark": ""})
    assert refused.status_code == 422
    assert set(refused.get_json()["fields"]) == {"status_id", "remark"}
    assert api.post(f"/bookings/{booking['id']}/status", {}).get_json()["fields"] == {"status_id": "Choose a status."}


def test_an_overlap_answers_409_naming_the_booking_it_clashes_with(app, api, world):
    first = api.post("/bookings", booking_body(world)).get_json()["id"]
    response = api.post("/bookings", booking_body(world, start="2026-12-01T09:30:00Z", end="2026-12-01T11:00:00Z"))
    assert response.status_code == 409
    body = response.get_json()
    assert list(body["fields"]) == ["start"]
    assert body["fields"]["start"].startswith(f"Overlaps booking {first} (Confirmed) on Room A")
    assert count_bookings(app) == 1

    # A cancelled booking does not occupy the room; confirming it again is what clashes.
    second = api.post(
        "/bookings", booking_body(world, start="2026-12-01T09:30:00Z", end="2026-12-01T11:00:00Z", status="Cancelled")
    ).get_json()["id"]
    clash = api.post(f"/bookings/{second}/status", {"status_id": world.a.statuses["Confirmed"]})
    assert clash.status_code == 409
    assert f"Overlaps booking {first}" in clash.get_json()["fields"]["start"]
    assert stored(app, second).status_id == world.a.statuses["Cancelled"]


def test_a_refused_update_writes_nothing(app, api, world, clock):
    first = api.post("/bookings", booking_body(world)).get_json()["id"]
    second = api.post("/bookings", booking_body(world, start="2026-12-01T10:00:00Z", end="2026-12-01T11:00:00Z"))
    second = second.get_json()
    clock.advance(timedelta(minutes=5))
    moved = api.patch(f"/bookings/{second['id']}", {"start": "2026-12-01T09:00:00Z", "remark": "Moved"})
    assert moved.status_code == 409
    assert api.get(f"/bookings/{second['id']}").get_json() == second
    backwards = api.patch(f"/bookings/{first}", {"end": "2026-12-01T08:00:00Z"})
    assert backwards.status_code == 422
    assert backwards.get_json()["fields"] == {"end": "The end must be after the start."}
    assert stored(app, first).end_at == utc(1, 10)


@pytest.mark.parametrize(
    "change, fields",
    [
        (
            {"start": None, "end": None, "object_id": None, "status_id": None},
            {"start", "end", "object_id", "status_id"},
        ),
        ({"start": "1 December, 9 o'clock"}, {"start"}),
        ({"start": "2026-12-01"}, {"start"}),
        ({"end": 20261201}, {"end"}),
        ({"object_id": "1"}, {"object_id"}),
        ({"object_id": True}, {"object_id"}),
        ({"status_id": 10**30}, {"status_id"}),
        ({"customer_id": 0}, {"customer_id"}),
        ({"remark": ["a"]}, {"remark"}),
        ({"remark": "x" * 10001}, {"remark"}),
        ({"remark": "nul \x00 char"}, {"remark"}),
        ({"start_at": "2026-12-01T09:00:00Z"}, {"start_at"}),
    ],
)
def test_invalid_fields_answer_422_naming_each_field(app, api, world, change, fields):
    response = api.post("/bookings", {**booking_body(world), **change})
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["error"] == "The booking is not valid."
    assert set(body["fields"]) == fields
    assert all(isinstance(message, str) and message for message in body["fields"].values())
    assert count_bookings(app) == 0


def test_missing_required_fields_are_named_with_the_portals_messages(api):
    response = api.post("/bookings", {"remark": "Only a remark"})
    assert response.status_code == 422
    assert response.get_json()["fields"] == {
        "object_id": "Choose an object.",
        "status_id": "Choose a status.",
        "start": "Enter a start time.",
        "end": "Enter an end time.",
    }


def test_an_inactive_object_takes_no_new_bookings(app, api, world):
    booking_id = api.post("/bookings", booking_body(world)).get_json()["id"]
    with app.app_context():
        db.session.get(BookableObject, world.a.object).active = False
        db.session.commit()
    refused = api.post("/bookings", booking_body(world, start="2026-12-02T09:00:00Z", end="2026-12-02T10:00:00Z"))
    assert refused.status_code == 422 and "not active" in refused.get_json()["fields"]["object_id"]
    # Its existing bookings can still be edited, naming the object they are on.
    kept = api.patch(f"/bookings/{booking_id}", {"object_id": world.a.object, "remark": "Still here"})
    assert kept.status_code == 200


def test_malformed_bodies_answer_400_and_other_content_types_415(app, api, world):
    for raw in ("{not json", "", "[1, 2]", '"text"', "[" * 100000):
        response = api.client.post("/api/v1/bookings", data=raw, content_type="application/json", headers=api.headers)
        assert response.status_code == 400, raw[:20]
        assert response.get_json()["fields"] == {}
    form = api.client.post("/api/v1/bookings", data=booking_body(world), headers=api.headers)
    assert form.status_code == 415
    assert "application/json" in form.get_json()["error"]
    too_big = api.post("/bookings", {**booking_body(world), "remark": "x" * 300_000})
    assert too_big.status_code == 413
    assert count_bookings(app) == 0


def test_unknown_addresses_and_methods_answer_in_json(api):
    missing = api.get("/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"] == "There is no such API endpoint."
    assert api.get("/bookings/abc").status_code == 404
    huge = api.get(f"/bookings/{10**12}")
    assert huge.status_code == 404 and huge.is_json
    wrong = api.client.delete("/api/v1/bookings/1", headers=api.headers)
    assert wrong.status_code == 405
    assert set(wrong.headers["Allow"].split(", ")) == {"GET", "PATCH"}
    assert wrong.is_json


# --- Outbound --------------------------------------------------------------------------------


@pytest.fixture
def delegated_integration(app, world):
    with app.app_context():
        integration = Integration(
            organisation_id=world.a.org,
            name="Front desk",
            auth_mode=AUTH_DELEGATED,
            connection_state=CONNECTION_CONNECTED,
            object_id=world.a.object,
        )
        db.session.add(integration)
        db.session.flush()
        db.session.add(CalendarLink(integration_id=integration.id, mailbox="me", object_id=world.a.object))
        db.session.commit()
        return integration.id


def outbound_jobs(app):
    with app.app_context():
        jobs = db.session.scalars(db.select(Job).where(Job.kind == OUTBOUND_BOOKING)).all()
        db.session.execute(db.delete(Job))
        db.session.commit()
        return sorted(job.key for job in jobs)


def test_an_api_change_queues_the_same_outbound_job_as_the_portal(app, api, login, world, delegated_integration):
    created = api.post("/bookings", booking_body(world)).get_json()["id"]
    assert outbound_jobs(app) == [outbound_key(delegated_integration, created)]

    assert api.patch(f"/bookings/{created}", {"remark": "Moved to the afternoon"}).status_code == 200
    assert outbound_jobs(app) == [outbound_key(delegated_integration, created)]

    api.post(f"/bookings/{created}/status", {"status_id": world.a.statuses["Cancelled"]})
    assert outbound_jobs(app) == [outbound_key(delegated_integration, created)]

    # Refused changes and changes that change nothing queue nothing.
    api.patch(f"/bookings/{created}", {"end": "2026-12-01T08:00:00Z"})
    api.patch(f"/bookings/{created}", {"remark": "Moved to the afternoon"})
    assert outbound_jobs(app) == []

    portal = login(world.a.admin)
    portal.post(
        f"/orgs/{world.a.org}/bookings/{created}/edit",
        data={
            "object_id": world.a.object,
            "customer_id": world.a.customer,
            "status_id": world.a.statuses["Confirmed"],
            "start_at": "2026-12-01T10:00",
            "end_at": "2026-12-01T11:00",
            "remark": "From the portal",
        },
    )
    assert outbound_jobs(app) == [outbound_key(delegated_integration, created)]


def test_bookings_of_objects_no_integration_syncs_queue_nothing(app, api, world, delegated_integration):
    with app.app_context():
        other = BookableObject(organisation_id=world.a.org, name="Unsynced room")
        db.session.add(other)
        db.session.commit()
        other_id = other.id
    api.post("/bookings", booking_body(world, object_id=other_id))
    assert outbound_jobs(app) == []


def test_a_customer_without_an_email_is_listed_with_null(api, app, world):
    with app.app_context():
        db.session.add(Customer(organisation_id=world.a.org, name="No e-mail"))
        db.session.commit()
    names = [c["name"] for c in api.get("/customers").get_json()["data"]]
    assert names == ["Customer a", "No e-mail"]
    assert api.get("/customers").get_json()["data"][1]["email"] is None
