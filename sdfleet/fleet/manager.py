"""The fleet manager: reconciles endpoints → replicas through a launcher, as the autoscaler decides.

Each replica is a registered worker identity with its own token; its state (idle, busy, loaded models)
comes from what the worker reports. Every decision is recorded in the endpoint's event log.

Under a leader `fence` (the term of the lease that elected this server), every write a pass makes (replica
identities registered and revoked, endpoint status, desired replicas and events) commits only while that term
holds, checked in the write's own transaction: a manager whose server stalled past its lease while another took
over is refused (NotLeader) before it registers, and so launches, anything; it skips the pass and is stopped when
its server next fails to renew."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sdfleet.domain.endpoints import Endpoint, EndpointStatus, ReplicaStatus
from sdfleet.domain.leadership import LeaderFence, NotLeader
from sdfleet.fleet.autoscaler import Autoscaler, Load
from sdfleet.fleet.launcher import Launcher, ReplicaSpec, ReplicaState
from sdfleet.services.endpoints import EndpointService, replica_worker_name

log = logging.getLogger("sdfleet.fleet")

#: which replicas to drain first when scaling down
_DRAIN_ORDER = {ReplicaStatus.LOST: 0, ReplicaStatus.STARTING: 1, ReplicaStatus.IDLE: 2, ReplicaStatus.DRAINING: 3,
                ReplicaStatus.BUSY: 4}


class FleetManager:
    """Runs beside the API: every `interval` seconds, brings each endpoint's replicas to what it should run."""

    def __init__(self, *, endpoints: EndpointService,
                 register: Callable[[str, str, LeaderFence | None], tuple[str, str]],
                 revoke: Callable[..., None], launcher: Launcher, server_url: str, cache_dir: Path,
                 clock: Callable[[], datetime], autoscaler: Autoscaler | None = None, interval: float = 1.0,
                 worker_env: dict[str, str] | None = None, pending_timeout: float = 300.0,
                 idle_interval: float = 15.0, fence: LeaderFence | None = None) -> None:
        self._endpoints = endpoints
        #: the leader term this manager acts under (None: unfenced, a single server without election)
        self._fence = fence
        self._worker_env = dict(worker_env or {})  #: settings replicas share with the server (image limit …)
        self._register = register
        self._revoke = revoke
        self._launcher = launcher
        self._server_url = server_url
        self._cache_dir = cache_dir
        self._clock = clock
        self._autoscaler = autoscaler or Autoscaler()
        self._interval = interval
        #: when nothing is queued, running, starting or draining, a pass every `idle_interval` (each pass reads
        #: the endpoints, their load and replicas: idle servers must not cost the database a query a second);
        #: `wake()` (a job queued, an endpoint changed) brings the next pass forward
        self._idle_interval = max(interval, idle_interval)
        self._busy = True
        self._wake = threading.Event()
        self._restarts: dict[str, int] = {}
        self._pending_timeout = pending_timeout
        self._reported_pending: set[str] = set()  #: replicas whose long wait for resources is recorded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # 1. Life cycle
    def start(self) -> None:
        """Re-attach to replicas that outlived a previous server run (Ray actors), revoke the identities of
        the others it left, then start reconciling."""
        self._launcher.start()
        adopted = {state.spec.worker_id for state in self._launcher.replicas().values()}
        try:
            for endpoint in self._endpoints.store.list(include_deleted=True):
                for replica in self._endpoints.replicas_of(endpoint.name):
                    if replica.managed and replica.worker_id not in adopted:
                        self._safe_revoke(replica.worker_id)
        except NotLeader as exc:  # another server leads already: revoke nothing of its replicas
            log.warning("fleet manager starting: %s", exc)
        self._thread = threading.Thread(target=self._run, name="fleet-manager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reconciling, stop every replica, revoke their identities."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        states = self._launcher.replicas()
        self._launcher.stop()
        # replicas that outlive the server keep their identities: the next server re-attaches to them
        # (unfenced: these are this manager's own replicas, stopped now, whoever leads)
        for spec in [s.spec for s in states.values() if not s.outlives_server] + self._launcher.drained():
            self._safe_revoke(spec.worker_id, fenced=False)

    def wake(self, _topic: str = "") -> None:
        """Reconcile soon (a job was queued, an endpoint changed), not at the next idle pass."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval if self._busy else self._idle_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile()
            except NotLeader as exc:  # stalled past the lease: act no more until this server renews it
                log.warning("fleet manager pass refused: %s", exc)
                self._busy = True
            except Exception:  # a database restart must not end autoscaling
                log.exception("reconciling endpoints failed")
                self._busy = True

    # 2. Reconciling
    def reconcile(self) -> None:
        """One pass over every endpoint."""
        for spec in self._launcher.drained():
            self._safe_revoke(spec.worker_id)
            self._restarts.pop(spec.name, None)
            self._reported_pending.discard(spec.name)
            self._record(spec.endpoint, "replica_stopped", {"replica": spec.name})
        states = self._launcher.replicas()
        self._busy = bool(self._launcher.drained()) or any(s.draining or s.pending_seconds is not None
                                                           for s in states.values())
        for endpoint in self._endpoints.store.list():
            mine = {n: s for n, s in states.items() if s.spec.endpoint == endpoint.name}
            self._note_restarts(endpoint.name, mine)
            if endpoint.status is EndpointStatus.DELETING:
                self._delete(endpoint, mine)
            elif endpoint.status is not EndpointStatus.FAILED:
                self._scale(endpoint, mine)

    def _note_restarts(self, endpoint: str, mine: dict[str, ReplicaState]) -> None:
        for name, state in mine.items():
            if state.pending_seconds is None:
                self._reported_pending.discard(name)
            elif state.pending_seconds > self._pending_timeout and name not in self._reported_pending:
                self._reported_pending.add(name)
                self._record(endpoint, "replica_pending", {
                    "replica": name, "seconds": round(state.pending_seconds), "resources": state.spec.resources,
                    "reason": "no node has the resources it asks for (waiting for the cluster's autoscaler)"})
            if state.restarts > self._restarts.get(name, 0):
                self._restarts[name] = state.restarts
                self._record(endpoint, "replica_restarted", {"replica": name, "restarts": state.restarts,
                                                             "reason": "the worker process exited"})

    def _delete(self, endpoint: Endpoint, mine: dict[str, ReplicaState]) -> None:
        self._busy = True
        for name, state in mine.items():
            if not state.draining:
                self._launcher.drain(name)
        if not mine:
            self._autoscaler.forget(endpoint.name)
            self._endpoints.store.set_state(endpoint.name, now=self._clock(), status=EndpointStatus.DELETED,
                                            desired_replicas=0, event=("status", {"from": "deleting",
                                                                                  "to": "deleted"}),
                                            fence=self._fence)

    def _scale(self, endpoint: Endpoint, mine: dict[str, ReplicaState]) -> None:
        # 1. Decide.
        active = {n: s for n, s in mine.items() if not s.draining}
        queued, running = self._endpoints.load(endpoint.name)
        decision = self._autoscaler.decide(endpoint.name, config=endpoint.config, load=Load(queued, running),
                                           current=len(active), now=time.monotonic())
        if decision.desired != endpoint.desired_replicas:
            self._endpoints.store.set_state(endpoint.name, now=self._clock(), desired_replicas=decision.desired,
                                            event=("scale", {"from": endpoint.desired_replicas,
                                                             "to": decision.desired, "replicas": len(active),
                                                             "queued": queued, "running": running,
                                                             "reason": decision.reason}), fence=self._fence)
            log.info("endpoint %s: %d → %d replicas (%s)", endpoint.name, endpoint.desired_replicas,
                     decision.desired, decision.reason)
        # 2. Act.
        reported = {r.name: r for r in self._endpoints.replicas_of(endpoint.name) if r.managed}
        try:
            for _ in range(decision.desired - len(active)):
                name = self._launch(endpoint, used=set(mine))
                mine = {**mine, name: self._launcher.replicas()[name]}
        except OSError as exc:
            self._endpoints.store.set_state(endpoint.name, now=self._clock(), status=EndpointStatus.FAILED,
                                            reason=f"cannot start a replica: {exc}",
                                            event=("failed", {"reason": str(exc)}), fence=self._fence)
            return
        surplus = len(active) - decision.desired
        if surplus > 0:
            ranked = sorted(active, key=lambda n: (_DRAIN_ORDER[_status(reported, n)], -_index(n)))
            for name in ranked[:surplus]:
                self._record(endpoint.name, "replica_draining", {"replica": name})  # fenced: then drained
                self._launcher.drain(name)
        # 3. Status.
        up = sum(1 for n, s in mine.items() if not s.draining and n in active
                 and _status(reported, n) in (ReplicaStatus.IDLE, ReplicaStatus.BUSY))
        settled = len(active) == decision.desired == up and not any(s.draining for s in mine.values())
        if not settled or queued or running or endpoint.status is not EndpointStatus.READY:
            self._busy = True
        status = EndpointStatus.READY if settled else (
            EndpointStatus.CREATING if endpoint.status is EndpointStatus.CREATING else EndpointStatus.SCALING)
        if status is not endpoint.status:
            self._endpoints.store.set_state(endpoint.name, now=self._clock(), status=status,
                                            event=("status", {"from": endpoint.status.value, "to": status.value}),
                                            fence=self._fence)

    def _launch(self, endpoint: Endpoint, *, used: set[str]) -> str:
        index = 0
        while replica_worker_name(endpoint.name, index) in used:
            index += 1
        name = replica_worker_name(endpoint.name, index)
        devices = endpoint.config.devices
        worker_id, token = self._register(name, endpoint.name, self._fence)  # NotLeader: nothing is launched
        spec = ReplicaSpec(name=name, server_url=self._server_url, token=token, device=devices[index % len(devices)],
                           cache_dir=self._cache_dir / f"{endpoint.name}-{index}", endpoint=endpoint.name,
                           worker_id=worker_id, extra_env=dict(self._worker_env), launcher=endpoint.config.launcher,
                           resources=dict(endpoint.config.resources))
        try:
            self._launcher.launch(spec)
        except OSError:
            self._safe_revoke(worker_id)
            raise
        self._record(endpoint.name, "replica_started", {"replica": name, "device": spec.device})
        return name

    # 3. Internals
    def _record(self, endpoint: str, type_: str, data: dict) -> None:
        self._endpoints.store.record(endpoint, type_, data, now=self._clock(), fence=self._fence)

    def _safe_revoke(self, worker_id: str, *, fenced: bool = True) -> None:
        if not worker_id:
            return
        try:
            self._revoke(worker_id, fence=self._fence if fenced else None)
        except NotLeader:
            raise
        except Exception:  # the database may already be gone at shutdown
            log.warning("could not revoke worker %s", worker_id)


def _status(reported: dict, name: str) -> ReplicaStatus:
    replica = reported.get(name)
    return replica.status if replica is not None else ReplicaStatus.STARTING


def _index(name: str) -> int:
    tail = name.rsplit(":", 1)[-1]
    return int(tail) if tail.isascii() and tail.isdigit() else 0
