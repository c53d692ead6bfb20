"""Fleet: 500 room mailboxes with 100 ms added to every Graph request.

Both measures start from the fleet's steady state (every room synced once, its delta link
stored, its subscription live), reached beforehand without added latency:

* one **polling cycle**: the polling fallback finds every room stale and queues a sync per
  room, which the job threads of a `Runner` run. Each room costs at least one delta
  request and the job threads are the only concurrency, so the ideal is rooms × latency ÷
  job threads. Measured with the default JOB_WORKERS, which the target applies to, and
  with twice as many threads to show how far more threads take a single process;
* one **renewal round**: every subscription is inside its renewal margin and
  `renew_subscriptions` queues one renewal job per integration, which renews them all
  through `$batch`. Items inside a batch are no HTTP requests of their own and are
  counted apart.

The Runner and the periodic jobs run in this process, the stand-in in its own. The
product's clock is moved forward to make the work due, as the scheduler would find it
half an hour or a day later; the stand-in's clock is left alone, so its tokens and
subscriptions judge time as Graph would.
"""

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app import clock as product_clock
from app.extensions import db
from app.graph.tokens import forget_application_token
from app.jobs import queue
from app.jobs.handlers import SYNC_LINK
from app.models import CalendarLink, Job
from app.models.job import JOB_FAILED
from app.scheduler.periodic import STALE_AFTER, poll_stale_links
from app.scheduler.runner import Runner
from app.subscriptions.jobs import (
    RENEW_INTEGRATION_SUBSCRIPTIONS,
    activate_link,
    renew_subscriptions,
    run_renew_integration,
)
from app.subscriptions.lifecycle import LIFETIME, RENEW_WITHIN
from bench import harness
from tests.clocks import MovedClock
from tests.live import serving

ROOMS = 500
LATENCY = 0.1
#: Some rooms hold appointments, so the first sync makes bookings and later rounds have
#: something to find unchanged.
FILLED_ROOMS = 25
APPOINTMENTS_PER_FILLED_ROOM = 8
DEFAULT_JOB_WORKERS = 4
#: (job threads, whether the target applies)
CYCLES = ((DEFAULT_JOB_WORKERS, True), (2 * DEFAULT_JOB_WORKERS, False))
#: Job threads that bring the fleet to its steady state; not measured.
SETUP_WORKERS = 8
CYCLE_TARGET_RATIO = 2.0
RENEWAL_TARGET_REQUESTS = 30
SETUP_TIMEOUT = 300
CYCLE_TIMEOUT = 180
DONE_CHECK_INTERVAL = 0.05


def run(kind):
    # The portal's webhook is served in this process; its request log would drown the table.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moved = MovedClock()
    real_utcnow = product_clock.utcnow
    product_clock.utcnow = moved.now
    try:
        with harness.workdir() as work, harness.StandIn() as stand_in, harness.database(kind, work) as url:
            return _measure(kind, work, stand_in, url, moved)
    finally:
        product_clock.utcnow = real_utcnow


def _measure(kind, work, stand_in, url, moved):
    upns = stand_in.add_tenant_with_rooms(ROOMS)
    for upn in upns[:FILLED_ROOMS]:
        stand_in.fill(upn, APPOINTMENTS_PER_FILLED_ROOM, minutes=60, from_day=1)
    settings = harness.PortalSettings(url, stand_in, work, extra={"JOB_WORKERS": DEFAULT_JOB_WORKERS})
    app = harness.make_portal(settings, create_schema=True)
    fleet = harness.seed_fleet(app, upns)
    # A token cached by an earlier run in this process belongs to another stand-in.
    forget_application_token(fleet.integration_id)
    try:
        with serving(app) as base_url:
            # The stand-in validates each new subscription by calling the webhook back.
            settings.extra["PUBLIC_BASE_URL"] = app.config["PUBLIC_BASE_URL"] = base_url
            _settle(app, fleet)
            stand_in.set_latency(LATENCY)
            rows = []
            for workers, targeted in CYCLES:
                rows += _polling_cycle(kind, app, stand_in, moved, workers, targeted)
            rows += _renewal_round(kind, app, stand_in, moved)
            return rows
    finally:
        forget_application_token(fleet.integration_id)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


# -- the steady state ------------------------------------------------------------------


def _settle(app, fleet):
    """Subscribe and first-sync every room through the product's own jobs."""
    with app.app_context():
        for link_id in fleet.link_ids:
            activate_link(link_id)
        db.session.commit()
        db.session.remove()
    runner = Runner(app, workers=SETUP_WORKERS, poll_seconds=0.05, periodic_jobs=[])
    runner.start()
    try:
        harness.wait_for(lambda: _jobs_left(app) == 0, SETUP_TIMEOUT, interval=0.2, what="the fleet's steady state")
    finally:
        runner.stop(grace_seconds=10)
    unsettled = _count(
        app,
        select(func.count())
        .select_from(CalendarLink)
        .where(
            CalendarLink.delta_link.is_(None)
            | CalendarLink.subscription_id.is_(None)
            | CalendarLink.last_sync_at.is_(None)
        ),
    )
    if unsettled:
        raise RuntimeError(f"{unsettled} of {ROOMS} rooms did not reach their steady state")


def _jobs_left(app, kind=None):
    """Jobs queued or running (of `kind`); a parked job ends the benchmark, since it never finishes."""
    where = [Job.kind == kind] if kind else []
    failed = _count(app, select(func.count()).select_from(Job).where(Job.state == JOB_FAILED, *where))
    if failed:
        raise RuntimeError(f"{failed} job(s) failed; see the log")
    return _count(app, select(func.count()).select_from(Job).where(*where))


def _count(app, query):
    with app.app_context():
        try:
            return db.session.scalar(query)
        finally:
            db.session.remove()


# -- one polling cycle -----------------------------------------------------------------


def _polling_cycle(kind, app, stand_in, moved, workers, targeted):
    app.config["JOB_WORKERS"] = workers
    runner = Runner(app, workers=app.config["JOB_WORKERS"], periodic_jobs=[])
    runner.start()
    try:
        # Idle job threads, as between two cycles: each sleeps its JOB_POLL_SECONDS.
        time.sleep(runner.poll_seconds * 1.5)
        moved.advance(STALE_AFTER + timedelta(minutes=1))
        stand_in.forget_requests()
        cycle_start = moved.now()
        started = time.monotonic()
        with app.app_context():
            queued = poll_stale_links(moved.now())
            db.session.remove()
        harness.wait_for(
            lambda: _cycle_done(app, cycle_start), CYCLE_TIMEOUT, interval=DONE_CHECK_INTERVAL, what="the polling cycle"
        )
        wall = time.monotonic() - started
    finally:
        runner.stop(grace_seconds=10)
    if len(queued) != ROOMS:
        raise RuntimeError(f"the polling job queued {len(queued)} of {ROOMS} rooms")
    sent = [entry for entry in stand_in.requests_made() if not entry["batch_item"]]
    graph = [entry for entry in sent if entry["path"].startswith("/v1.0/")]
    ideal = ROOMS * LATENCY / workers
    ratio = wall / ideal
    name = f"polling cycle, {workers} job threads" + (" (default)" if workers == DEFAULT_JOB_WORKERS else "")
    return [
        _row(kind, f"{name}: wall time", round(wall, 2), "s"),
        _row(kind, f"{name}: Graph requests", len(graph)),
        _row(kind, f"{name}: token requests", len(sent) - len(graph)),
        _row(
            kind,
            f"{name}: wall ÷ ideal ({ROOMS} × {LATENCY * 1000:.0f} ms ÷ {workers} = {ideal:g} s)",
            round(ratio, 2),
            target=f"≤ {CYCLE_TARGET_RATIO:g}" if targeted else "",
            met=ratio <= CYCLE_TARGET_RATIO if targeted else None,
        ),
    ]


def _cycle_done(app, cycle_start):
    if _jobs_left(app, SYNC_LINK):
        return False
    synced = _count(app, select(func.count()).select_from(CalendarLink).where(CalendarLink.last_sync_at >= cycle_start))
    if synced != ROOMS:
        raise RuntimeError(f"the polling cycle ended with {synced} of {ROOMS} rooms synced")
    return True


# -- one renewal round -----------------------------------------------------------------


def _renewal_round(kind, app, stand_in, moved):
    # Just inside the renewal margin of subscriptions made LIFETIME ago.
    moved.advance(LIFETIME - RENEW_WITHIN + timedelta(hours=1))
    db_before, remote_before = _db_expiries(app), _remote_expiries(stand_in)
    stand_in.forget_requests()
    started = time.monotonic()
    with app.app_context():
        renewed = renew_subscriptions(moved.now())
        # What the job threads would do with the renewal jobs the periodic run queued.
        while (job := queue.claim("bench", kinds=[RENEW_INTEGRATION_SUBSCRIPTIONS])) is not None:
            run_renew_integration(job.key, job.payload)
            queue.complete(job)
        db.session.remove()
    wall = time.monotonic() - started
    logged = stand_in.requests_made()
    db_after, remote_after = _db_expiries(app), _remote_expiries(stand_in)

    sent = [entry for entry in logged if not entry["batch_item"]]
    batches = [entry for entry in sent if entry["path"].endswith("/$batch")]
    tokens = [entry for entry in sent if "/oauth2/" in entry["path"]]
    items = [entry for entry in logged if entry["batch_item"]]
    moved_in_db = _moved_forward(db_before, db_after)
    moved_remote = _moved_forward(remote_before, remote_after)
    all_moved = renewed == ROOMS and moved_in_db == len(remote_before) == moved_remote == ROOMS
    return [
        _row(kind, f"renewal of {ROOMS} subscriptions: wall time", round(wall, 2), "s"),
        _row(
            kind,
            "renewal: HTTP requests",
            len(sent),
            target=f"≤ {RENEWAL_TARGET_REQUESTS}",
            met=len(sent) <= RENEWAL_TARGET_REQUESTS,
        ),
        _row(kind, "renewal: $batch / token requests", f"{len(batches)} / {len(tokens)}"),
        _row(kind, "renewal: requests inside the batches", len(items)),
        _row(
            kind,
            "renewal: expiries moved forward (DB / stand-in)",
            f"{moved_in_db} / {moved_remote}",
            target=f"{ROOMS} / {ROOMS}",
            met=all_moved,
        ),
    ]


def _db_expiries(app):
    with app.app_context():
        try:
            return dict(db.session.execute(select(CalendarLink.id, CalendarLink.subscription_expires_at)).all())
        finally:
            db.session.remove()


def _remote_expiries(stand_in):
    value = stand_in.control("subscriptions", method="GET")["value"]
    return {entry["id"]: datetime.fromisoformat(entry["expires_at"]) for entry in value}


def _moved_forward(before, after):
    return sum(1 for key, expiry in before.items() if expiry and after.get(key) and after[key] > expiry)


def _row(kind, measure, value, unit="", target="", met=None):
    return harness.Row("fleet", kind, measure, value, unit, target, met)
