import threading
from datetime import UTC, datetime, timedelta

import pytest

from app.database import server_time
from app.extensions import db
from app.scheduler import lease

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)


@pytest.fixture
def context(app):
    with app.app_context():
        yield app


def at(seconds):
    return START + timedelta(seconds=seconds)


def test_the_first_acquire_creates_the_lease(context):
    assert lease.current() is None
    assert lease.acquire("host-a:1:aa", now=at(0), ttl=TTL)

    row = lease.current()
    assert (row.holder, row.acquired_at, row.expires_at, row.last_tick_at) == ("host-a:1:aa", at(0), at(60), at(0))
    assert lease.is_held(row, now=at(59))
    assert not lease.is_held(row, now=at(60))


def test_a_live_lease_keeps_others_out_and_renewing_keeps_it(context):
    assert lease.acquire("a", now=at(0), ttl=TTL)
    assert not lease.acquire("b", now=at(30), ttl=TTL)

    assert lease.renew("a", now=at(45), ttl=TTL)
    assert not lease.acquire("b", now=at(90), ttl=TTL), "renewed at 45, so valid until 105"
    # Acquiring what one holds already renews it and keeps the original start.
    assert lease.acquire("a", now=at(100), ttl=TTL)

    row = lease.current()
    assert (row.holder, row.acquired_at, row.expires_at, row.last_tick_at) == ("a", at(0), at(160), at(100))


def test_a_successor_takes_over_once_the_ttl_passes_without_renewal(context):
    assert lease.acquire("a", now=at(0), ttl=TTL)
    assert not lease.acquire("b", now=at(59), ttl=TTL)

    assert lease.acquire("b", now=at(60), ttl=TTL)

    assert not lease.renew("a", now=at(61), ttl=TTL)
    assert not lease.acquire("a", now=at(61), ttl=TTL)
    row = lease.current()
    assert (row.holder, row.acquired_at) == ("b", at(60))


def test_an_expired_lease_cannot_be_renewed_only_acquired_again(context):
    assert lease.acquire("a", now=at(0), ttl=TTL)
    assert not lease.renew("a", now=at(61), ttl=TTL)
    assert lease.acquire("a", now=at(61), ttl=TTL)


def test_release_hands_over_at_once_and_only_by_the_holder(context):
    assert lease.acquire("a", now=at(0), ttl=TTL)
    assert not lease.release("b")
    assert lease.current().holder == "a"

    assert lease.release("a")
    row = lease.current()
    assert (row.holder, row.expires_at, row.last_tick_at) == (None, None, at(0))
    assert lease.acquire("b", now=at(1), ttl=TTL)


def test_the_database_clock_is_used_when_no_time_is_given(context):
    before = datetime.now(UTC)
    now = server_time.database_now()
    assert now.tzinfo is not None
    assert abs(now - before) < timedelta(seconds=5)

    assert lease.acquire("a", ttl=TTL)
    assert not lease.acquire("b", ttl=TTL)
    row = lease.current()
    assert abs(row.last_tick_at - before) < timedelta(seconds=5)
    assert row.expires_at - row.last_tick_at == TTL


def test_the_ttl_defaults_to_the_setting(context):
    context.config["SCHEDULER_LEASE_SECONDS"] = 42
    assert lease.acquire("a", now=at(0))
    assert lease.current().expires_at == at(42)


def test_holder_ids_name_host_and_process(context):
    import os
    import socket

    first, second = lease.make_holder_id(), lease.make_holder_id()
    assert first.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert first != second


@pytest.mark.parametrize("existing_row", [False, True], ids=["first-ever", "expired"])
def test_rivals_acquiring_at_once_yield_exactly_one_holder(context, existing_row):
    if existing_row:
        assert lease.acquire("old", now=at(0), ttl=TTL)
    rivals = 8
    start = threading.Barrier(rivals)
    results = {}

    def rival(name):
        with context.app_context():
            start.wait()
            results[name] = lease.acquire(name, now=at(120), ttl=TTL)
            db.session.remove()

    threads = [threading.Thread(target=rival, args=(f"rival-{i}",)) for i in range(rivals)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [name for name, won in results.items() if won]
    assert len(results) == rivals
    assert len(winners) == 1
    assert lease.current().holder == winners[0]
