"""The leader lease on SQLite and PostgreSQL: one holder at a time, renewed by its holder, taken over only once
expired, handed over at once on release, and won by exactly one of several racing servers; its terms fence the
fleet manager's writes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from sdfleet.domain.endpoints import EndpointConfig
from sdfleet.domain.leadership import LeaderFence, NotLeader
from sdfleet.store.database import Database
from sdfleet.store.endpoints import SqlEndpointStore
from sdfleet.store.leader_leases import SqlLeaderLease, check_fence
from sdfleet.store.tables import LeaderLeaseRow
from sdfleet.store.workers import SqlWorkerRegistry
from tests.fixtures.clock import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def holder(db: Database) -> str:
    with db.session() as s:
        return s.get(LeaderLeaseRow, "fleet-manager").holder


def test_one_holder_renewal_takeover_and_release(db):
    clock = FakeClock(T0)
    a, b = (SqlLeaderLease(db, name="fleet-manager", holder=h, clock=clock) for h in ("server-a", "server-b"))
    assert a.hold(15) == (True, T0 + timedelta(seconds=15))
    assert b.hold(15) == (False, T0 + timedelta(seconds=15))  # a follower learns when to look again
    clock.now = T0 + timedelta(seconds=10)
    assert a.hold(15) == (True, clock.now + timedelta(seconds=15))  # renewed
    clock.now = T0 + timedelta(seconds=20)
    assert b.hold(15)[0] is False  # a's renewed lease runs until 25 s
    clock.now = T0 + timedelta(seconds=26)  # a stalled: its lease expired
    assert b.hold(15) == (True, clock.now + timedelta(seconds=15))
    assert holder(db) == "server-b"
    held, until = a.hold(15)  # the stalled server learns it lost
    assert held is False and until == clock.now + timedelta(seconds=15)
    b.release()
    assert a.hold(15)[0] is True and holder(db) == "server-a"  # handed over at once, no wait for expiry


def test_racing_servers_elect_exactly_one(db):
    clock = FakeClock(T0)
    leases = [SqlLeaderLease(db, name="fleet-manager", holder=f"server-{i}", clock=clock) for i in range(4)]
    assert race(leases) == [False, False, False, True]
    clock.now = T0 + timedelta(seconds=16)  # expired: its holder renewing races the others, one wins
    assert race(leases) == [False, False, False, True]


def race(leases: list[SqlLeaderLease]) -> list[bool]:
    """Every lease's `hold` at once, from its own thread: the sorted outcomes."""
    results: list[bool] = []
    barrier = threading.Barrier(len(leases))

    def hold(lease: SqlLeaderLease) -> None:
        barrier.wait()
        results.append(lease.hold(15)[0])

    threads = [threading.Thread(target=hold, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(results)


def test_terms_change_hands_with_the_lease_and_fence_writes(db):
    clock = FakeClock(T0)
    a, b = (SqlLeaderLease(db, name="fleet-manager", holder=h, clock=clock) for h in ("server-a", "server-b"))
    assert a.hold(15)[0] and a.fence == LeaderFence(name="fleet-manager", holder="server-a", term=1)
    term_a = a.fence
    clock.advance(10)
    assert a.hold(15)[0] and a.fence == term_a  # a renewal keeps the term
    store, workers = SqlEndpointStore(db), SqlWorkerRegistry(db)
    store.add("pool", EndpointConfig(), now=clock())
    store.record("pool", "note", {"n": 1}, now=clock(), fence=term_a)
    clock.advance(30)  # a's lease ran out, nobody took it: no other server acts, a's writes still commit
    store.record("pool", "note", {"n": 2}, now=clock(), fence=term_a)
    assert b.fence is None and b.hold(15)[0] and b.fence.term == 2  # b takes over: a new term

    with pytest.raises(NotLeader):
        store.set_state("pool", now=clock(), desired_replicas=3, event=("note", {"n": 3}), fence=term_a)
    with pytest.raises(NotLeader):
        workers.add(worker_id="W" * 26, name="replica:pool:0", endpoint="pool", token_hash="h", now=clock(),
                    fence=term_a)
    assert store.get("pool").desired_replicas == 0 and workers.get("W" * 26) is None
    store.record("pool", "note", {"n": 4}, now=clock(), fence=b.fence)
    assert [e.data.get("n") for e in store.events_after("pool", 0, limit=10)] == [None, 1, 2, 4]

    b.release()
    assert a.hold(15)[0] and a.fence.term == 3  # back to a: a third term, not a's first
    with pytest.raises(NotLeader):
        store.record("pool", "note", {"n": 5}, now=clock(), fence=term_a)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite has one writer: nothing interleaves
def test_a_takeover_waits_for_a_fenced_write_in_flight(db):
    """PostgreSQL: a fenced write share-locks the lease row, so a takeover racing it commits after it (the write
    happened within its term) and the next fenced write of the old term is refused. (SQLite serializes writers.)"""
    clock = FakeClock(T0)
    a, b = (SqlLeaderLease(db, name="fleet-manager", holder=h, clock=clock) for h in ("server-a", "server-b"))
    assert a.hold(15)[0]
    fence = a.fence
    clock.advance(16)
    taken: list[bool] = []
    with db.session() as s:
        check_fence(s, fence, is_sqlite=False)  # a's write, in flight
        thread = threading.Thread(target=lambda: taken.append(b.hold(15)[0]))
        thread.start()
        _wait_for_a_lock_wait(db)
        assert taken == []  # the takeover waits for a's transaction
    thread.join(timeout=30)
    assert taken == [True]
    with pytest.raises(NotLeader), db.session() as s:
        check_fence(s, fence, is_sqlite=False)


def _wait_for_a_lock_wait(db: Database, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with db.session(write_lock=False) as s:
            if s.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                              "AND datname = current_database()")).scalar():
                return
        assert time.monotonic() < deadline, "the takeover never waited on the lease row"
        time.sleep(0.02)
