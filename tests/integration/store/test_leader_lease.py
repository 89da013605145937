"""The leader lease on SQLite and PostgreSQL: one holder at a time, renewed by its holder, taken over only once
expired, handed over at once on release, and won by exactly one of several racing servers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sdfleet.store.database import Database
from sdfleet.store.leader_leases import SqlLeaderLease
from sdfleet.store.tables import LeaderLeaseRow
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
