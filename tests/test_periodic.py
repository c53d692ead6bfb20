from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobs import queue
from app.jobs.handlers import SYNC_LINK
from app.models import CalendarLink, Integration, Job
from app.models.integration import (
    AUTH_APPLICATION,
    CONNECTION_CONNECTED,
    CONNECTION_NEEDS_RECONNECT,
    CONNECTION_NOT_CONNECTED,
)
from app.models.job import JOB_FAILED
from app.scheduler import periodic


@pytest.fixture
def links(app, world, clock):
    """Room links in several situations, by name -> link id."""
    now = clock.now
    with app.app_context():

        def integration(state):
            row = Integration(
                organisation_id=world.a.org,
                name=f"Rooms {state}",
                auth_mode=AUTH_APPLICATION,
                connection_state=state,
            )
            db.session.add(row)
            db.session.flush()
            return row.id

        connected = integration(CONNECTION_CONNECTED)
        situations = {
            "never_synced": (connected, True, None, None),
            "synced_31_min_ago": (connected, True, now - timedelta(minutes=31), now - timedelta(hours=2)),
            "synced_10_min_ago": (connected, True, now - timedelta(minutes=10), now - timedelta(hours=23)),
            "full_25_hours_ago": (connected, True, now - timedelta(minutes=5), now - timedelta(hours=25)),
            "disabled": (connected, False, None, None),
            "needs_reconnect": (integration(CONNECTION_NEEDS_RECONNECT), True, None, None),
            "not_connected": (integration(CONNECTION_NOT_CONNECTED), True, None, None),
        }
        ids = {}
        for name, (integration_id, enabled, last_sync, last_full) in situations.items():
            link = CalendarLink(
                integration_id=integration_id,
                mailbox=f"{name.replace('_', '-')}@rooms.example",
                object_id=world.a.object,
                enabled=enabled,
                last_sync_at=last_sync,
                last_full_sync_at=last_full,
            )
            db.session.add(link)
            db.session.flush()
            ids[name] = link.id
        db.session.commit()
        return ids


@pytest.fixture
def context(app, links):
    with app.app_context():
        yield app


def queued_syncs():
    jobs = db.session.scalars(select(Job).where(Job.kind == SYNC_LINK).order_by(Job.id)).all()
    return {int(job.key): job.payload for job in jobs}


def test_polling_queues_connected_links_without_a_sync_for_half_an_hour(context, links, clock):
    queued = periodic.poll_stale_links(clock.now)

    assert queued == sorted([links["never_synced"], links["synced_31_min_ago"]])
    assert queued_syncs() == {links["never_synced"]: {"reason": "poll"}, links["synced_31_min_ago"]: {"reason": "poll"}}


def test_polling_again_adds_nothing_while_the_syncs_are_pending(context, clock):
    periodic.poll_stale_links(clock.now)
    periodic.poll_stale_links(clock.now + timedelta(minutes=5))
    assert len(queued_syncs()) == 2


def test_polling_follows_the_clock(context, links, clock):
    later = clock.now + timedelta(minutes=21)
    assert links["synced_10_min_ago"] in periodic.poll_stale_links(later)


def test_polling_leaves_a_recently_parked_link_alone_for_half_an_hour(context, links, clock):
    queue.enqueue(SYNC_LINK, links["never_synced"])
    db.session.commit()
    queue.fail(queue.claim("w"), PermissionError("access denied"), transient=False)

    assert links["never_synced"] not in periodic.poll_stale_links(clock.now + timedelta(minutes=29))
    assert links["never_synced"] in periodic.poll_stale_links(clock.now + timedelta(minutes=31))
    assert db.session.scalar(select(Job.state).where(Job.key == str(links["never_synced"]), Job.state == JOB_FAILED))


def test_polling_commits_as_it_goes_so_job_threads_start_on_the_first_rooms(context, links, clock, monkeypatch):
    monkeypatch.setattr(periodic, "ENQUEUE_CHUNK", 1)
    queued_so_far = []
    real_enqueue = periodic.enqueue_link_sync

    def enqueue_then_fail(link_id, **options):
        if queued_so_far:
            raise RuntimeError("the database went away")
        queued_so_far.append(link_id)
        return real_enqueue(link_id, **options)

    monkeypatch.setattr(periodic, "enqueue_link_sync", enqueue_then_fail)
    with pytest.raises(RuntimeError):
        periodic.poll_stale_links(clock.now)
    db.session.rollback()

    # The first room's job was committed before the failure; the second is still due next time.
    assert list(queued_syncs()) == [links["never_synced"]]
    monkeypatch.setattr(periodic, "enqueue_link_sync", real_enqueue)
    assert links["synced_31_min_ago"] in periodic.poll_stale_links(clock.now + timedelta(minutes=5))


def test_daily_full_sync_queues_links_whose_last_full_round_is_a_day_old(context, links, clock):
    queued = periodic.daily_full_sync(clock.now)

    assert queued == sorted([links["never_synced"], links["full_25_hours_ago"]])
    assert queued_syncs() == {links["never_synced"]: {"full": True}, links["full_25_hours_ago"]: {"full": True}}


def test_daily_full_sync_follows_the_clock(context, links, clock):
    an_hour_later = periodic.daily_full_sync(clock.now + timedelta(hours=1, minutes=1))
    assert links["synced_10_min_ago"] in an_hour_later, "its full round was 23 hours ago"
    assert links["synced_31_min_ago"] not in an_hour_later, "its full round was 2 hours ago"
    assert links["synced_31_min_ago"] in periodic.daily_full_sync(clock.now + timedelta(hours=22, minutes=1))


def test_a_poll_and_a_full_sync_for_one_link_coalesce_into_one_full_sync(context, links, clock):
    periodic.poll_stale_links(clock.now)
    periodic.daily_full_sync(clock.now)

    assert queued_syncs()[links["never_synced"]] == {"full": True, "reason": "poll"}
    assert len(db.session.scalars(select(Job).where(Job.key == str(links["never_synced"]))).all()) == 1


def test_every_slot_is_filled_by_its_job():
    from app.subscriptions import jobs as subscription_jobs

    scheduled = {job.name: job for job in periodic.load_periodic_jobs()}

    assert scheduled["poll_stale_links"].function is periodic.poll_stale_links
    assert scheduled["daily_full_sync"].function is periodic.daily_full_sync
    assert scheduled["renew_subscriptions"].function is subscription_jobs.renew_subscriptions
    assert scheduled["create_missing_subscriptions"].function is subscription_jobs.create_missing_subscriptions
    assert scheduled["poll_stale_links"].every == timedelta(minutes=5)
    assert periodic.empty_slots() == []


def test_a_slot_takes_one_job_and_unknown_slots_are_refused():
    periodic.load_periodic_jobs()
    with pytest.raises(ValueError):
        periodic.periodic("renew_subscriptions")(lambda now: None)
    with pytest.raises(ValueError):
        periodic.periodic("no_such_slot")
