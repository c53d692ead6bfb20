"""The admin portal's pages and buttons: an admin reaches only their own organisation, support reaches all."""

import pytest

from app.extensions import db
from app.models import AuditEntry, CalendarLink, Job, SyncLogEntry
from app.models.job import JOB_FAILED
from tests.admin_helpers import add_rooms_integration, count


@pytest.fixture
def beta(app, world, clock):
    """Organisation B's rooms integration with a room, a log line, an audit entry and a parked job."""
    from datetime import UTC, datetime

    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with app.app_context():
        rooms = add_rooms_integration(world.b, ["room-b@beta.example"], name="Beta rooms")
        link_id = rooms.links["room-b@beta.example"]
        db.session.add(
            SyncLogEntry(
                organisation_id=world.b.org,
                integration_id=rooms.id,
                link_id=link_id,
                action="create",
                reason="Beta booking",
            )
        )
        db.session.add(
            AuditEntry(
                organisation_id=world.b.org,
                integration_id=rooms.id,
                action="room_added",
                detail="Beta room added",
                user_email="admin@b.example",
            )
        )
        job = Job(
            kind="sync_link",
            key=str(link_id),
            state=JOB_FAILED,
            run_at=now,
            created_at=now,
            failed_at=now,
            attempts=8,
            last_error="Beta failure",
        )
        db.session.add(job)
        db.session.commit()
        rooms.link = link_id
        rooms.job = job.id
        return rooms


def requests_for(org, beta, world):
    base = f"/orgs/{org}/integrations/{beta.id}"
    room = f"{base}/rooms/{beta.link}"
    upn = {"upn": "planted@beta.example", "object_id": world.b.object}
    return [
        ("get", base, None),
        ("get", base + "/rooms", None),
        ("get", base + "/rooms?status=error", None),
        ("get", base + "/rooms/paste", None),
        ("get", room + "/edit", None),
        ("get", room + "/remove", None),
        ("get", base + "/log", None),
        ("get", base + "/audit", None),
        ("get", base + "/disconnect/confirm", None),
        ("post", base + "/rooms", upn),
        ("post", room + "/edit", upn),
        ("post", room + "/disable", None),
        ("post", room + "/enable", None),
        ("post", room + "/sync", None),
        ("post", room + "/remove", None),
        ("post", base + "/rooms/paste", {"rooms": "planted@beta.example,Room B", "preview": "Preview"}),
        ("post", base + "/rooms/paste", {"rooms": "planted@beta.example,Room B", "apply": "Apply"}),
        ("post", f"{base}/jobs/{beta.job}/retry", None),
    ]


def snapshot(world):
    return (
        count(CalendarLink),
        db.session.scalar(db.select(CalendarLink.enabled).where(CalendarLink.mailbox == "room-b@beta.example")),
        db.session.scalar(db.select(CalendarLink.mailbox).where(CalendarLink.object_id == world.b.object)),
        sorted(db.session.execute(db.select(Job.kind, Job.key, Job.state)).all()),
        count(AuditEntry),
    )


def test_an_admin_can_neither_see_nor_change_another_organisations_integration(app, login, world, beta):
    with app.app_context():
        before = snapshot(world)
    client = login(world.a.admin)
    # B's own paths, and B's ids under A's organisation path.
    for org in (world.b.org, world.a.org):
        for method, path, data in requests_for(org, beta, world):
            response = getattr(client, method)(path, data=data)
            assert response.status_code == 404, (method, path)
            assert "Beta" not in response.get_data(as_text=True), (method, path)
    assert client.get(f"/orgs/{world.b.org}/audit").status_code == 404
    with app.app_context():
        assert snapshot(world) == before


def test_an_admin_cannot_reach_another_integrations_room_through_their_own(app, login, world, beta):
    with app.app_context():
        own = add_rooms_integration(world.a, ["room-a@alpha.example"], name="Alpha rooms")
        before = snapshot(world)
    client = login(world.a.admin)
    room = f"{own.base}/rooms/{beta.link}"
    for method, path in [
        ("get", room + "/edit"),
        ("get", room + "/remove"),
        ("post", room + "/disable"),
        ("post", room + "/sync"),
        ("post", room + "/remove"),
        ("post", f"{own.base}/jobs/{beta.job}/retry"),
    ]:
        assert getattr(client, method)(path).status_code == 404, (method, path)
    with app.app_context():
        assert snapshot(world) == before


def test_an_admins_own_audit_log_shows_nothing_of_another_organisation(app, login, world, beta):
    page = login(world.a.admin).get(f"/orgs/{world.a.org}/audit").get_data(as_text=True)
    assert "Beta room added" not in page and "No changes recorded yet." in page


def test_support_sees_and_acts_on_every_organisations_integration(app, login, world, beta):
    client = login(world.support)
    for method, path, _ in requests_for(world.b.org, beta, world):
        if method == "get":
            assert client.get(path).status_code == 200, path
    assert client.get(f"/orgs/{world.b.org}/audit").status_code == 200
    assert client.get("/support/integrations").status_code == 200
    assert client.post(f"/orgs/{world.b.org}/integrations/{beta.id}/jobs/{beta.job}/retry").status_code == 302
    with app.app_context():
        assert db.session.get(Job, beta.job).state == "queued"
        [entry] = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "job_retried")).all()
        assert (entry.organisation_id, entry.user_email) == (world.b.org, world.support)
