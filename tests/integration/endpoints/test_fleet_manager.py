"""The fleet manager against a real database and a fake launcher: launch, drain order, restarts, delete; and a
manager whose leader lease was taken over is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sdfleet.domain.endpoints import EndpointConfig, ReplicaStatus
from sdfleet.domain.ids import new_id
from sdfleet.domain.leadership import LeaderFence, NotLeader
from sdfleet.fleet.launcher import ReplicaSpec, ReplicaState
from sdfleet.fleet.manager import FleetManager
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.store.jobs import NewJob, SqlJobQueue
from sdfleet.store.leader_leases import SqlLeaderLease
from sdfleet.store.types import utcnow
from tests.fixtures.clock import FakeClock


class FakeLauncher:
    """The Launcher protocol in memory: replicas 'run' until drained; `crash` bumps restarts."""

    def __init__(self) -> None:
        self.states: dict[str, ReplicaState] = {}
        self.gone: list[ReplicaSpec] = []

    def start(self) -> None: ...

    def launch(self, spec: ReplicaSpec) -> None:
        self.states[spec.name] = ReplicaState(spec=spec, running=True, restarts=0, draining=False)

    def drain(self, name: str) -> None:
        s = self.states[name]
        self.states[name] = ReplicaState(spec=s.spec, running=True, restarts=s.restarts, draining=True)

    def exit_drained(self) -> None:
        for name in [n for n, s in self.states.items() if s.draining]:
            self.gone.append(self.states.pop(name).spec)

    def crash(self, name: str) -> None:
        s = self.states[name]
        self.states[name] = ReplicaState(spec=s.spec, running=True, restarts=s.restarts + 1, draining=False)

    def replicas(self) -> dict[str, ReplicaState]:
        return dict(self.states)

    def drained(self) -> list[ReplicaSpec]:
        done, self.gone = self.gone, []
        return done

    def stop(self) -> None:
        self.states.clear()


def manager_for(runtime, launcher, *, fence: LeaderFence | None = None, clock=utcnow):
    services = runtime.services

    def register(name: str, endpoint: str, fence: LeaderFence | None) -> tuple[str, str]:
        issued = services.workers.register(name=name, endpoint=endpoint, fence=fence)
        return issued.worker.id, issued.token

    return FleetManager(endpoints=services.endpoints, register=register, revoke=services.workers.revoke,
                        launcher=launcher, server_url="http://127.0.0.1:1", cache_dir=runtime.settings.data_dir,
                        clock=clock, fence=fence)


def queue_jobs(runtime, endpoint: str, n: int) -> list[str]:
    admin = runtime.services.users.get(None, "admin")
    queue = SqlJobQueue(runtime.database)
    ids = []
    for _ in range(n):
        job = queue.submit(NewJob(id=new_id(), user_id=admin.id, endpoint=endpoint, spec=GenerateSpec(graph={}),
                                  summary=JobSummary(), max_attempts=1, idempotency_key=None, request_hash=None), now=utcnow())
        ids.append(job.id)
    return ids


def test_reconcile_launches_drains_idle_first_and_deletes(runtime):
    store = runtime.services.endpoints.store
    store.add("pool", EndpointConfig(devices=("cuda:0", "cuda:1"), max_replicas=2, idle_seconds=0), now=utcnow())
    launcher = FakeLauncher()
    manager = manager_for(runtime, launcher)
    manager.reconcile()
    assert launcher.states == {} and store.get("pool").status.value == "ready"

    queue_jobs(runtime, "pool", 3)
    manager.reconcile()
    assert sorted(launcher.states) == ["replica:pool:0", "replica:pool:1"]
    assert [s.spec.device for s in launcher.states.values()] == ["cuda:0", "cuda:1"]
    assert store.get("pool").desired_replicas == 2 and store.get("pool").status.value == "scaling"
    # Replica 0 takes a job (busy), replica 1 reports idle: the endpoint is ready.
    workers = runtime.services.workers
    by_name = {r.name: r for r in runtime.services.endpoints.replicas_of("pool")}
    token = {n: s.spec.token for n, s in launcher.states.items()}
    busy = workers.authenticate(token["replica:pool:0"])
    assert workers.claim(busy) is not None
    workers.report(workers.authenticate(token["replica:pool:1"]), status="idle", device="cuda:1",
                   loaded_models=[], info={})
    manager.reconcile()
    assert store.get("pool").status.value == "ready"
    assert by_name["replica:pool:0"].status is ReplicaStatus.STARTING

    # Work drops to the one running job: the idle replica is drained, not the busy one.
    for job_id in _queued(runtime, "pool"):
        SqlJobQueue(runtime.database).cancel(job_id, now=utcnow())
    manager.reconcile()
    assert launcher.states["replica:pool:1"].draining and not launcher.states["replica:pool:0"].draining
    launcher.exit_drained()
    manager.reconcile()
    remaining = {r.name for r in runtime.services.endpoints.replicas_of("pool")}
    assert remaining == {"replica:pool:0"}  # the drained identity is revoked

    # A crash is recorded as a replacement.
    launcher.crash("replica:pool:0")
    manager.reconcile()
    types = [e.type for e in store.events_after("pool", 0, limit=100)]
    assert "replica_restarted" in types
    assert [e.data["to"] for e in store.events_after("pool", 0, limit=100) if e.type == "scale"] == [2, 1]

    # Delete: every replica drains; the endpoint ends `deleted` once they are gone.
    store.set_state("pool", now=utcnow(), status=_status("deleting"))
    manager.reconcile()
    assert all(s.draining for s in launcher.states.values())
    launcher.exit_drained()
    manager.reconcile()
    assert store.get("pool").status.value == "deleted"
    assert runtime.services.endpoints.replicas_of("pool") == []


def test_start_revokes_replica_identities_left_by_a_previous_run(runtime):
    workers = runtime.services.workers
    stale = workers.register(name="replica:default:0", endpoint="default")
    operator = workers.register(name="gpu-box", endpoint="default")
    runtime.services.endpoints.ensure_default(replicas=0, device="cpu")
    manager = manager_for(runtime, FakeLauncher())
    manager.start()
    manager.stop()
    names = {r.name for r in runtime.services.endpoints.replicas_of("default")}
    assert names == {"gpu-box"} and stale.worker.id and operator.worker.id


def test_a_manager_whose_lease_was_taken_over_writes_and_launches_nothing(runtime):
    """Server a's manager stalls past its 15 s lease; server b takes the lease over (a new term) and manages the
    endpoint. a's next pass is refused at its first write (the replica identity it would launch under), so it
    registers, launches and records nothing; b's passes go on through its renewals."""
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    store = runtime.services.endpoints.store
    store.add("pool", EndpointConfig(devices=("cpu",), min_replicas=1, max_replicas=1), now=clock())
    store.set_state("pool", now=clock(), desired_replicas=1)  # decided already: a's first write is a registration
    lease_a, lease_b = (SqlLeaderLease(runtime.database, name="fleet-manager", holder=h, clock=clock)
                        for h in ("server-a", "server-b"))
    assert lease_a.hold(15)[0] and lease_a.fence.term == 1
    launcher_a, launcher_b = FakeLauncher(), FakeLauncher()
    a = manager_for(runtime, launcher_a, fence=lease_a.fence, clock=clock)
    clock.advance(16)  # a stalled: its lease expired, and b takes it over
    assert lease_b.hold(15)[0] and lease_b.fence.term == 2
    b = manager_for(runtime, launcher_b, fence=lease_b.fence, clock=clock)
    events = len(store.events_after("pool", 0, limit=100))

    with pytest.raises(NotLeader):
        a.reconcile()
    assert launcher_a.states == {} and runtime.services.endpoints.replicas_of("pool") == []
    assert len(store.events_after("pool", 0, limit=100)) == events

    b.reconcile()
    assert list(launcher_b.states) == ["replica:pool:0"]
    assert [r.name for r in runtime.services.endpoints.replicas_of("pool")] == ["replica:pool:0"]
    assert [e.type for e in store.events_after("pool", events, limit=100)] == ["replica_started"]
    # a's server learns at its renewal that it lost (its LeaderElected then stops a's manager) …
    assert lease_a.hold(15)[0] is False and lease_a.fence is None
    # … while b renews within its term: its manager's fence still holds
    clock.advance(10)
    assert lease_b.hold(15)[0] and lease_b.fence == LeaderFence(name="fleet-manager", holder="server-b", term=2)
    launcher_b.crash("replica:pool:0")
    b.reconcile()
    assert store.events_after("pool", 0, limit=100)[-1].type == "replica_restarted"
    # a's manager starting now would revoke b's replica as one it does not know: refused, b's replica stays
    a.start()
    a.stop()
    assert [r.name for r in runtime.services.endpoints.replicas_of("pool")] == ["replica:pool:0"]


def _queued(runtime, endpoint: str) -> list[str]:
    from sqlalchemy import select

    from sdfleet.store.tables import JobRow

    with runtime.database.session() as s:
        return list(s.scalars(select(JobRow.id).where(JobRow.endpoint == endpoint, JobRow.status == "queued")))


def _status(value: str):
    from sdfleet.domain.endpoints import EndpointStatus

    return EndpointStatus(value)
