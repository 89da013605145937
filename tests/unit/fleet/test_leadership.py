"""LeaderElected: the task runs only while the lease is held, and leadership costs few lease calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sdfleet.fleet.leadership import LeaderElected
from tests.fixtures.clock import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Lease:
    """One shared lease row, as the database keeps it; `fail` makes calls raise (a database outage)."""

    name = "fleet-manager"

    def __init__(self, clock: FakeClock, row: dict, holder: str) -> None:
        self.clock, self.row, self.holder = clock, row, holder
        self.calls = 0
        self.fail = False

    def hold(self, seconds: float) -> tuple[bool, datetime]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("database unreachable")
        now = self.clock()
        if self.row and self.row["holder"] != self.holder and self.row["until"] > now:
            return False, self.row["until"]
        self.row.update(holder=self.holder, until=now + timedelta(seconds=seconds))
        return True, self.row["until"]

    def release(self) -> None:
        if self.row.get("holder") == self.holder:
            self.row["until"] = self.clock()


class Task:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def elect(clock: FakeClock, row: dict, holder: str, log: list[str]) -> tuple[LeaderElected, Lease]:
    lease = Lease(clock, row, holder)
    return LeaderElected(lease=lease, factory=lambda: Task(log, holder), clock=clock, seconds=15), lease


def test_one_leader_takeover_after_expiry_and_handover_on_stop():
    clock, row, log = FakeClock(T0), {}, []
    a, lease_a = elect(clock, row, "a", log)
    b, lease_b = elect(clock, row, "b", log)
    a.tick()
    b.tick()
    assert (a.leading, b.leading) == (True, False) and log == ["start a"]
    for _ in range(30):  # 30 s of one-second ticks
        clock.advance(1)
        a.tick()
        b.tick()
    assert log == ["start a"]
    assert lease_a.calls <= 1 + 30 // 5 + 1, "the leader renews once a third of the lease has run"
    assert lease_b.calls <= 1 + 30 // 15 + 1, "a follower looks again only when the lease it saw expires"
    a.stop()  # a clean stop: the task stops and the lease is released
    assert log == ["start a", "stop a"] and not a.leading
    clock.advance(1)
    b.tick()  # b's cached view says "wait", but only until the old expiry
    clock.advance(15)
    b.tick()
    assert b.leading and log[-1] == "start b"


def test_a_stalled_leader_steps_down_when_another_took_over():
    clock, row, log = FakeClock(T0), {}, []
    a, _ = elect(clock, row, "a", log)
    b, _ = elect(clock, row, "b", log)
    a.tick()
    clock.advance(16)  # a stalled past its lease; b takes over
    b.tick()
    assert b.leading
    a.tick()  # a wakes up and tries to renew
    assert not a.leading and log == ["start a", "start b", "stop a"]


def test_a_leader_cut_off_from_the_database_stops_once_its_lease_ran_out():
    clock, row, log = FakeClock(T0), {}, []
    a, lease = elect(clock, row, "a", log)
    a.tick()
    lease.fail = True
    clock.advance(6)
    with pytest.raises(ConnectionError):
        a.tick()
    assert a.leading, "still within its lease"
    clock.advance(10)
    with pytest.raises(ConnectionError):
        a.tick()
    assert not a.leading and log == ["start a", "stop a"]
