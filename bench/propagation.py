"""Propagation: an appointment changed in the stand-in until its booking is committed.

50 rooms of a 500-room fleet have one appointment each; 100 changes (a new subject, two
per room, one at a time) are made through the stand-in, which notifies the portal's
webhook as Graph would, with its own notification delay set to zero (the target
excludes it). A change counts as arrived when the bench's own database connection sees
the booking's remark carry the new subject. Measured at idle, then again while the other
450 rooms receive the webhook benchmark's load (500 notifications per second).
"""

import time

from sqlalchemy import create_engine, text

from bench import harness, live, webhook

ROOMS = 500
CHANGED_ROOMS = 50
CHANGES = 100
P95_TARGET_SECONDS = 2.0
ARRIVAL_TIMEOUT = 90
LOAD_SECONDS = 120


def book_changed_rooms(stand_in, upns, booked):
    """One appointment in each of the first rooms; `booked` gets {room: (meeting uid, subject)}."""
    for number, upn in enumerate(upns[:CHANGED_ROOMS], start=1):
        created = stand_in.control(
            "appointments",
            {
                "organizer": harness.ORGANIZER,
                "attendees": [upn],
                "subject": f"Propagation {number}",
                "day": 2,
                "from": "10:00",
                "to": "11:00",
                "time_zone": "UTC",
            },
        )
        booked[upn] = (created["uid"], created["subject"])


def run(kind):
    booked = {}

    def prepare(stand_in, upns):
        book_changed_rooms(stand_in, upns, booked)

    with live.live_fleet(kind, ROOMS, prepare=prepare, notification_delay=0) as fleet:
        engine = create_engine(fleet.settings.database_url)
        try:
            targets = _targets(booked, engine)
            idle = _measure(fleet.stand_in, engine, targets, "idle")

            subscriptions = fleet.subscriptions()
            others = {link: s for link, s in subscriptions.items() if s[0] not in {t[0] for t in targets}}
            load = webhook.start_load(
                f"{fleet.portal.url}/webhooks/graph", webhook.bodies_for(others), seconds=LOAD_SECONDS
            )
            try:
                time.sleep(2)
                loaded = _measure(fleet.stand_in, engine, targets, "loaded")
            finally:
                load.kill()
                load.wait()
        finally:
            engine.dispose()

    def row(measure, value, unit="", target="", met=None):
        return harness.Row("propagation", kind, measure, value, unit, target, met)

    idle_p95 = harness.percentile(idle, 0.95)
    return [
        row("change → booking p50, idle", harness.percentile(idle, 0.50), "s"),
        row(
            "change → booking p95, idle", idle_p95, "s", f"<= {P95_TARGET_SECONDS:g} s", idle_p95 <= P95_TARGET_SECONDS
        ),
        row("change → booking p50, webhook load", harness.percentile(loaded, 0.50), "s"),
        row("change → booking p95, webhook load", harness.percentile(loaded, 0.95), "s"),
    ]


def _targets(booked, engine):
    """(room, meeting uid, booking id) of each changed room's appointment, as the first sync stored it."""
    found = []
    with engine.connect() as connection:
        for room, (uid, subject) in sorted(booked.items()):
            booking_id = connection.scalar(text("SELECT id FROM bookings WHERE remark = :s"), {"s": subject})
            if booking_id is None:
                raise RuntimeError(f"the appointment {subject!r} of {room} has no booking after the first sync")
            found.append((room, uid, booking_id))
    return found


def _measure(stand_in, engine, targets, phase):
    seconds = []
    with engine.connect() as connection:
        for number in range(CHANGES):
            room, uid, booking_id = targets[number % len(targets)]
            subject = f"Change {phase} {number}"
            started = time.monotonic()
            stand_in.control(f"appointments/{uid}/update", {"subject": subject})
            deadline = started + ARRIVAL_TIMEOUT
            while True:
                remark = connection.scalar(text("SELECT remark FROM bookings WHERE id = :id"), {"id": booking_id})
                connection.rollback()
                if remark == subject:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"change {number} of {room} did not arrive within {ARRIVAL_TIMEOUT} s")
                time.sleep(0.005)
            seconds.append(time.monotonic() - started)
    return seconds
