"""A portal with something on every page: both connection methods, rooms in every state, a parked job,
sync log lines, bookings, an open incident, and a second organisation that must never show through.
"""

from datetime import timedelta
from types import SimpleNamespace

from app.clock import utcnow
from app.extensions import db
from app.models import (
    AuditEntry,
    BookableObject,
    Booking,
    BookingStatus,
    CalendarLink,
    Customer,
    Incident,
    Integration,
    Job,
    SyncConflict,
    SyncLogEntry,
)
from app.models.job import JOB_FAILED
from app.models.organisation import ROLE_ADMIN, ROLE_SUPPORT
from app.orgs.provisioning import create_organisation
from tests.conftest import add_user

ADMIN = "admin@alpha.example"
SUPPORT = "support@ireserve.example"
OTHER_ADMIN = "admin@beta.example"

# What a parked sync job really carries: Graph's code, message, request id and the URL it called.
GRAPH_FAILURE = (
    "GraphAccessDenied: ErrorAccessDenied: Access is denied. Check credentials and try again. "
    "(403, request-id 4f0c2b8e-6a1d-4c3e-9b57-0d6f1e2a3b4c) GET "
    "https://graph.microsoft.com/v1.0/users/boardroom.amsterdam.floor3@alpha.example/calendarView/delta"
    "?startDateTime=2026-08-01T00:00:00Z&endDateTime=2027-12-01T00:00:00Z"
)


def seed_portal():
    """Seeds the database of the current app context; returns the ids the pages need."""
    now = utcnow()
    alpha = create_organisation("Alpha Rooms")
    beta = create_organisation("Beta Halls")
    db.session.flush()
    add_user(ADMIN, ROLE_ADMIN, alpha.id)
    add_user(OTHER_ADMIN, ROLE_ADMIN, beta.id)
    add_user(SUPPORT, ROLE_SUPPORT)
    board = BookableObject(organisation_id=alpha.id, name="Board room", capacity=12)
    hall = BookableObject(organisation_id=alpha.id, name="Hall", capacity=80)
    desk = BookableObject(organisation_id=alpha.id, name="Megan's desk", capacity=1)
    beta_room = BookableObject(organisation_id=beta.id, name="Beta secret room", capacity=4)
    customer = Customer(organisation_id=alpha.id, name="Contoso Ltd", email="guest@contoso.example")
    db.session.add_all([board, hall, desk, beta_room, customer])
    db.session.flush()
    statuses = {
        status.name: status
        for status in db.session.scalars(db.select(BookingStatus).where(BookingStatus.organisation_id == alpha.id))
    }
    common = dict(
        tenant_id="contoso.onmicrosoft.com",
        client_id="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        client_secret="app-client-secret-K9x%",
        cancel_status=statuses["Cancelled"],
        new_booking_status=statuses["Confirmed"],
    )
    rooms = Integration(
        organisation_id=alpha.id,
        name="Meeting rooms",
        auth_mode="application",
        connection_state="connected",
        **common,
    )
    calendar = Integration(
        organisation_id=alpha.id,
        name="Megan's calendar",
        auth_mode="delegated",
        connection_state="needs_reconnect",
        connection_error="The refresh token was revoked",
        object_id=desk.id,
        **common,
    )
    hidden = Integration(
        organisation_id=beta.id,
        name="Beta hidden integration",
        auth_mode="delegated",
        connection_state="needs_reconnect",
        tenant_id="beta.onmicrosoft.com",
        client_id="bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee",
    )
    db.session.add_all([rooms, calendar, hidden])
    db.session.flush()
    healthy = CalendarLink(
        integration_id=rooms.id,
        mailbox="hall@alpha.example",
        object_id=hall.id,
        last_sync_status="ok",
        last_sync_at=now - timedelta(minutes=4),
    )
    failing = CalendarLink(
        integration_id=rooms.id,
        mailbox="boardroom.amsterdam.floor3@alpha.example",
        object_id=board.id,
        last_sync_status="error",
        last_sync_error=GRAPH_FAILURE,
        consecutive_failures=5,
        failing_since=now - timedelta(hours=3),
    )
    own = CalendarLink(integration_id=calendar.id, mailbox="me", object_id=desk.id)
    beta_link = CalendarLink(
        integration_id=hidden.id,
        mailbox="secret@beta.example",
        object_id=beta_room.id,
        last_sync_status="error",
        last_sync_error="Beta failure",
    )
    db.session.add_all([healthy, failing, own, beta_link])
    db.session.flush()
    db.session.add(
        Job(
            kind="sync_link",
            key=str(failing.id),
            state=JOB_FAILED,
            run_at=now - timedelta(hours=1),
            attempts=8,
            created_at=now - timedelta(hours=3),
            failed_at=now - timedelta(hours=1),
            last_error=GRAPH_FAILURE,
        )
    )
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    booking = Booking(
        organisation_id=alpha.id,
        object_id=hall.id,
        customer_id=customer.id,
        status_id=statuses["Confirmed"].id,
        start_at=start,
        end_at=start + timedelta(hours=1),
        remark="Quarterly review",
    )
    db.session.add_all(
        [
            booking,
            Booking(
                organisation_id=alpha.id,
                object_id=board.id,
                status_id=statuses["Confirmed"].id,
                start_at=start + timedelta(days=1),
                end_at=start + timedelta(days=1, hours=2),
                remark="Board meeting",
            ),
        ]
    )
    db.session.flush()
    db.session.add(
        SyncConflict(
            organisation_id=alpha.id,
            integration_id=rooms.id,
            link_id=healthy.id,
            event_id="AAMk-clashing-appointment",
            subject="Team lunch",
            start_at=start + timedelta(minutes=30),
            end_at=start + timedelta(hours=2),
            organiser_name="Adele Vance",
            organiser_email="adele@alpha.example",
            booking_id=booking.id,
        )
    )
    db.session.add_all(
        [
            SyncLogEntry(
                organisation_id=alpha.id,
                integration_id=rooms.id,
                link_id=healthy.id,
                booking_id=booking.id,
                action="create",
                reason="New Outlook appointment",
                created_at=now - timedelta(minutes=30),
            ),
            SyncLogEntry(
                organisation_id=alpha.id,
                integration_id=rooms.id,
                link_id=failing.id,
                action="error",
                reason=GRAPH_FAILURE,
                is_error=True,
                created_at=now - timedelta(minutes=20),
            ),
            AuditEntry(
                organisation_id=alpha.id,
                integration_id=rooms.id,
                user_email=ADMIN,
                action="settings_saved",
                detail="Saved the settings.",
            ),
        ]
    )
    incident = Incident(
        organisation_id=alpha.id,
        integration_id=rooms.id,
        link_id=failing.id,
        kind="link_failing",
        subject=f"link:{failing.id}",
        severity="warning",
        message="boardroom.amsterdam.floor3@alpha.example has failed to sync for 3 hours.",
        integration_name=rooms.name,
        mailbox=failing.mailbox,
        opened_at=now - timedelta(hours=2),
    )
    beta_incident = Incident(
        organisation_id=beta.id,
        integration_id=hidden.id,
        kind="needs_reconnect",
        subject=f"integration:{hidden.id}",
        severity="critical",
        message="Beta hidden integration needs reconnecting.",
        integration_name=hidden.name,
        opened_at=now - timedelta(hours=1),
    )
    db.session.add_all([incident, beta_incident])
    db.session.commit()
    return SimpleNamespace(
        org=alpha.id,
        other_org=beta.id,
        rooms=rooms.id,
        calendar=calendar.id,
        hidden=hidden.id,
        failing_link=failing.id,
        healthy_link=healthy.id,
        booking=booking.id,
        object=hall.id,
        incident=incident.id,
    )
