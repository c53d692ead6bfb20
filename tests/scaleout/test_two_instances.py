"""The portal scales out: two instances on one database share the work and never trip over each other.

Each test states one claim about two gunicorn masters (four workers, four scheduler
runners) sharing a PostgreSQL schema; cluster.py says how they are run and watched.
"""

import time
from collections import Counter

import pytest

from tests.e2e.helpers import in_days, utc
from tests.live import eventually
from tests.scaleout.cluster import JOB_LEASE_SECONDS, LEASE_SECONDS, TICK_SECONDS, Sampler, pid_of

pytestmark = pytest.mark.postgresql_only

#: How long the lease is watched for the "exactly one scheduler" claim.
WATCHED_LEASE_PERIODS = 3
#: A delta request can be logged a fraction of a millisecond early: the stand-in stamps its
#: end with the wall clock and its duration with the monotonic one, rounded to 0.1 ms.
CLOCK_SLACK = 0.001


def test_exactly_one_of_the_four_runners_holds_the_scheduler_lease_and_runs_the_periodic_jobs(two_instances):
    cluster = two_instances
    runners = {instance.name: instance.runner_ids() for instance in cluster.instances}
    assert [len(ids) for ids in runners.values()] == [2, 2] and len({*sum(runners.values(), [])}) == 4, (
        f"expected two runners per instance: {runners}\n{cluster.tails()}"
    )
    holder = eventually(cluster.lease_holder, timeout=LEASE_SECONDS + TICK_SECONDS + 5, message=cluster.tails())

    watch_from = time.time()
    samples = []
    deadline = time.monotonic() + WATCHED_LEASE_PERIODS * LEASE_SECONDS
    while time.monotonic() < deadline:
        samples.append(cluster.lease())
        time.sleep(0.2)
    probe_runs = cluster.probe_runs(since=watch_from)

    diagnosis = f"lease samples {samples[:3]} ... {samples[-3:]}\nprobe {probe_runs}\n{cluster.tails()}"
    assert {row.holder for row in samples} == {holder}, diagnosis
    assert all(row.live for row in samples), "the lease lapsed while its holder was alive\n" + diagnosis
    # Renewed by its holder (expiry moving on), never taken afresh (acquired_at stays).
    assert len({row.acquired_at for row in samples}) == 1, diagnosis
    assert len({row.expires_at for row in samples}) >= WATCHED_LEASE_PERIODS * LEASE_SECONDS / TICK_SECONDS / 2, (
        diagnosis
    )

    owner = cluster.instance_of(holder)
    assert owner is not None, f"{holder} is no worker of either instance\n{diagnosis}"
    assert pid_of(holder) in owner.worker_pids() and pid_of(holder) not in cluster.other(owner).worker_pids()

    # The periodic jobs ran, every half second, in the holder's process and nowhere else.
    assert {pid for _, pid in probe_runs} == {pid_of(holder)}, diagnosis
    assert len(probe_runs) >= WATCHED_LEASE_PERIODS * LEASE_SECONDS, diagnosis

    # Of the four runners exactly one ever took the lease (each logs it when it does).
    takeovers = [runner for instance in cluster.instances for runner in instance.lease_takeovers()]
    assert takeovers == [holder], f"lease taken by {takeovers}\n{cluster.tails()}"


def test_sync_jobs_queued_through_both_instances_run_on_both(two_instances):
    cluster = two_instances
    a, b = cluster.instances
    # Slow Graph answers keep each sync busy, so one instance cannot drain the queue alone.
    rooms = cluster.add_rooms("spread", 40, latency=0.15)
    start, end = in_days(2, 9), in_days(2, 10)
    expected = {}
    for room in rooms:
        subject = f"Meeting in {room.upn}"
        expected[room] = [(subject, utc(start), utc(end), cluster.book(room, subject, start, end))]
    before = {instance.name: instance.syncs() for instance in cluster.instances}

    for number, room in enumerate(rooms):
        (a, b)[number % 2].notify([room])
    failed = cluster.wait_until_synced(rooms, timeout=40)

    ran = {instance.name: instance.syncs() - before[instance.name] for instance in cluster.instances}
    assert not failed, f"parked sync jobs: {failed}\n{cluster.tails()}"
    assert sum(ran.values()) == len(rooms), f"syncs per instance {ran}\n{cluster.tails()}"
    assert all(count >= 1 for count in ran.values()), f"one instance ran every sync: {ran}\n{cluster.tails()}"
    missing = {room.upn: cluster.bookings(room) for room in rooms if cluster.bookings(room) != expected[room]}
    assert not missing, f"rooms without their booking: {missing}"


def test_killing_the_instance_that_holds_the_scheduler_lease_hands_it_over_within_a_minute(two_instances):
    cluster = two_instances
    holder = eventually(cluster.lease_holder, timeout=LEASE_SECONDS + TICK_SECONDS + 5, message=cluster.tails())
    victim = cluster.instance_of(holder)
    assert victim is not None, f"{holder} is no worker of either instance\n{cluster.tails()}"
    survivor = cluster.other(victim)
    survivor_pids = survivor.worker_pids()

    killed_at = time.time()
    started = time.monotonic()
    victim.kill()

    def taken_over():
        row = cluster.lease()
        return row if row is not None and row.live and pid_of(row.holder) in survivor_pids else None

    new = eventually(taken_over, timeout=60, interval=0.05, message=f"no hand-over within 60 s\n{cluster.tails()}")
    hand_over = time.monotonic() - started

    assert hand_over < 60, f"hand-over took {hand_over:.1f} s"
    # The dead holder's lease runs out, then the next tick of a survivor takes it: the
    # worst case is one lease plus one tick, which the product's defaults keep under a minute.
    assert hand_over <= LEASE_SECONDS + TICK_SECONDS + 5, f"hand-over took {hand_over:.1f} s\n{cluster.tails()}"
    assert survivor.lease_takeovers() == [new.holder], survivor.tail()

    # The periodic jobs carry on in the new holder's process, and only there.
    new_pid = pid_of(new.holder)
    eventually(lambda: len(cluster.probe_runs(since=killed_at)) >= 2, timeout=5, message=survivor.tail())
    assert {pid for _, pid in cluster.probe_runs(since=killed_at)} == {new_pid}, cluster.probe_runs(since=killed_at)


def test_no_room_is_synced_by_two_workers_at_the_same_time(two_instances):
    cluster = two_instances
    a, b = cluster.instances
    # A few rooms, each sync slowed down, and notifications for all of them sent to both
    # instances in a stream: every room always has a job waiting while one of its syncs runs.
    rooms = cluster.add_rooms("busy", 3, latency=0.3)
    for room in rooms:
        cluster.book(room, f"Meeting in {room.upn}", in_days(1, 9), in_days(1, 10))
    before = {instance.name: instance.syncs() for instance in cluster.instances}

    with Sampler(cluster, rooms) as sampler:
        flood_until = time.monotonic() + 5
        while time.monotonic() < flood_until:
            a.notify(rooms)
            b.notify(rooms)
            time.sleep(0.05)
        failed = cluster.wait_until_synced(rooms, timeout=30)

    ran = {instance.name: instance.syncs() - before[instance.name] for instance in cluster.instances}
    assert not failed, f"parked sync jobs: {failed}\n{cluster.tails()}"
    for room in rooms:
        syncs = cluster.delta_requests(room)
        overlaps = [
            (one, next_one)
            for one, next_one in zip(syncs, syncs[1:], strict=False)
            if next_one[0] < one[1] - CLOCK_SLACK
        ]
        assert not overlaps, f"{room.upn} was synced twice at once: {overlaps}\n{cluster.tails()}"
        # Enough syncs one after another for two at once to have had every chance.
        assert len(syncs) >= 5, f"{room.upn} was synced only {len(syncs)} times"

    owner_of = {pid: instance.name for instance in cluster.instances for pid in instance.worker_pids()}
    running = Counter()
    waiting_behind_a_run = Counter()
    claimed_on = {room.key: set() for room in rooms}
    for jobs in sampler.samples:
        for room in rooms:
            mine = [job for job in jobs if job.key == room.key]
            running[room.key] = max(running[room.key], sum(job.state == "running" for job in mine))
            if any(job.state == "running" for job in mine) and any(job.due for job in mine):
                waiting_behind_a_run[room.key] += 1
            claimed_on[room.key] |= {owner_of.get(pid_of(job.claimed_by)) for job in mine if job.state == "running"}
    distribution = f"syncs per instance {ran}; rooms claimed on {claimed_on}"
    assert max(running.values()) == 1, f"{running}; {distribution}"
    # Every room kept having a due job while one of its syncs ran: a claim that ignored the
    # running one would have started a second sync at once.
    assert all(waiting_behind_a_run[room.key] >= 5 for room in rooms), f"{waiting_behind_a_run}; {distribution}"
    assert all(count >= 1 for count in ran.values()), f"one instance ran every sync: {distribution}\n{cluster.tails()}"
    # ... and rooms were taken by workers of either instance in turn, not pinned to one.
    assert any(claimed_on[room.key] == {"a", "b"} for room in rooms), distribution


def test_changes_whose_jobs_were_cut_off_by_a_killed_instance_still_reach_their_bookings(two_instances):
    cluster = two_instances
    holder = eventually(cluster.lease_holder, timeout=LEASE_SECONDS + TICK_SECONDS + 5, message=cluster.tails())
    # Kill the instance without the scheduler: what is tested here is the job queue alone.
    survivor = cluster.instance_of(holder)
    victim = cluster.other(survivor)
    victim_pids = set(victim.worker_pids())

    rooms = cluster.add_rooms("keep", 30, latency=0.5)
    start, end = in_days(3, 14), in_days(3, 15)
    expected = {}
    for room in rooms:
        subject = f"Changed in {room.upn}"
        expected[room] = [(subject, utc(start), utc(end), cluster.book(room, subject, start, end))]
    for number, room in enumerate(rooms):
        cluster.instances[number % 2].notify([room])

    def victims_running_jobs():
        jobs = cluster.sync_jobs(rooms)
        return [job for job in jobs if job.state == "running" and pid_of(job.claimed_by) in victim_pids]

    eventually(victims_running_jobs, timeout=10, interval=0.01, message=f"{victim} ran no job\n{cluster.tails()}")
    killed_at = time.time()
    victim.kill()
    cut_off = victims_running_jobs()
    assert cut_off, "the victim's jobs finished before it was killed; nothing was cut off"

    failed = cluster.wait_until_synced(rooms, timeout=JOB_LEASE_SECONDS + 30)
    assert not failed, f"parked sync jobs: {failed}\n{cluster.tails()}"
    wrong = {room.upn: cluster.bookings(room) for room in rooms if cluster.bookings(room) != expected[room]}
    assert not wrong, f"changes lost: {wrong}\n{cluster.tails()}"
    # What the dead instance had claimed was synced again afterwards, by the survivor.
    by_key = {room.key: room for room in rooms}
    not_rerun = [
        job.key
        for job in cut_off
        if not any(start_time > killed_at for start_time, _ in cluster.delta_requests(by_key[job.key]))
    ]
    assert not not_rerun, f"cut-off jobs never ran again: {not_rerun}\n{survivor.tail()}"
