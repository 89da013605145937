"""Ray launcher: each replica is a named, detached Ray actor that runs the same `sdfleet worker` loop.

Ray decides the node (the endpoint's `resources`: num_cpus, num_gpus, memory, custom resources); Ray's
autoscaler (KubeRay, a cloud launcher) adds nodes while actors wait for resources — sdfleet manages no
machine. Actors live in one namespace per sdfleet install and are named after their replica
(`replica:<endpoint>:<n>`), so a restarted server (even after `kill -9`) re-attaches to them by name instead
of starting duplicates; each holds its replica's spec (worker id, token) for that.

States come from Ray: an actor that has not answered yet waits for resources (the replica is `starting`;
`pending_seconds` grows), a dead actor is replaced under the same name after a backoff, a drained one is
killed once its worker has exited. `ray` is imported only when this launcher is configured (`sdfleet[ray]`)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sdfleet.fleet.launcher import ReplicaSpec, ReplicaState
from sdfleet.fleet.worker_env import worker_environment

__all__ = ["RayLauncher", "ReplicaActor", "actor_options"]

log = logging.getLogger("sdfleet.fleet.ray")


class ReplicaActor:
    """The body of one replica actor: a `sdfleet worker` subprocess on the actor's node.

    The worker watches the actor's pid (`--parent-pid`): when Ray kills the actor, the worker exits too."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        env = worker_environment(os.environ, token=spec["token"], extra=spec["extra_env"])
        cmd = [sys.executable, "-m", "sdfleet.cli", "worker", "--server", spec["server_url"], "--device",
               spec["device"], "--cache-dir", spec["cache_dir"], "--name", spec["name"], "--parent-pid", str(os.getpid())]
        self._proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def spec(self) -> dict[str, Any]:
        return self._spec

    def status(self) -> dict[str, Any]:
        """Whether the worker still runs (`exit` None), its pid and the Ray node the actor is on."""
        import ray

        return {"exit": self._proc.poll(), "pid": self._proc.pid, "node": ray.get_runtime_context().get_node_id()}

    def drain(self) -> None:
        """SIGTERM: the worker finishes its job (or hands it back) and exits."""
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)


def actor_options(spec: ReplicaSpec, *, namespace: str) -> dict[str, Any]:
    """Ray actor options for a replica: its name, a detached lifetime and the endpoint's resources."""
    resources = dict(spec.resources)
    options: dict[str, Any] = {"name": spec.name, "namespace": namespace, "lifetime": "detached",
                               "max_restarts": 0, "num_cpus": resources.pop("num_cpus", 1.0),
                               "num_gpus": resources.pop("num_gpus", 0.0)}
    memory = resources.pop("memory", 0.0)
    if memory:
        options["memory"] = memory
    if resources:
        options["resources"] = resources
    return options


@dataclass
class _Replica:
    spec: ReplicaSpec
    actor: Any = None
    ping: Any = None  #: an outstanding `status` call
    launched_at: float = field(default_factory=time.monotonic)
    answered: bool = False  #: the actor has run (it was placed and its worker started)
    node: str | None = None
    restarts: int = 0
    next_start: float | None = None  #: when a dead replica is started again
    drain_deadline: float | None = None


class RayLauncher:
    """Replicas as detached Ray actors; `stop` disconnects and leaves them running for the next server."""

    def __init__(self, *, address: str, namespace: str, stop_timeout: float = 90.0, max_backoff: float = 60.0,
                 poll_interval: float = 1.0, attach_timeout: float = 20.0, server_url: str | None = None) -> None:
        self._server_url = server_url  #: replaces the fleet's (loopback) server URL in every spec when set
        self._address = address
        self._namespace = namespace
        self._stop_timeout = stop_timeout
        self._max_backoff = max_backoff
        self._poll = poll_interval
        self._attach_timeout = attach_timeout
        self._replicas: dict[str, _Replica] = {}
        self._drained: list[ReplicaSpec] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._actor_class: Any = None
        self._connected_here = False  #: this launcher opened the process's Ray connection (and closes it)

    # 1. Life cycle
    def start(self) -> None:
        """Connect to the cluster, re-attach to this install's live replica actors, start watching."""
        import ray

        self._connected_here = not ray.is_initialized()
        if self._connected_here:
            ray.init(address=self._address, namespace=self._namespace, log_to_driver=False,
                     logging_level=logging.WARNING)
        self._actor_class = ray.remote(ReplicaActor)
        self._attach()
        self._thread = threading.Thread(target=self._watch, name="ray-launcher", daemon=True)
        self._thread.start()

    def _attach(self) -> None:
        import ray

        handles = {}
        for entry in ray.util.list_named_actors(all_namespaces=True):
            name = entry["name"]
            if entry["namespace"] == self._namespace and name.startswith("replica:"):
                try:
                    handles[name] = ray.get_actor(name, namespace=self._namespace)
                except ValueError:  # gone in between
                    continue
        refs = {name: handle.spec.remote() for name, handle in handles.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=self._attach_timeout)
        for name, ref in refs.items():
            spec = None
            if ref in ready:
                try:
                    spec = ray.get(ref)
                except ray.exceptions.RayError:
                    spec = None
            if spec is None:
                # not placed yet (or dead): nothing runs there, so it is simpler to start it again; its
                # identity is revoked by the fleet manager as a leftover of the previous run
                log.warning("replica actor %s did not answer; killing it", name)
                _kill(handles[name])
                continue
            spec["cache_dir"] = Path(spec["cache_dir"])
            replica = _Replica(spec=ReplicaSpec(**spec), actor=handles[name], answered=True)
            self._replicas[name] = replica
            log.info("re-attached to replica actor %s", name)

    def stop(self) -> None:
        """Stop watching and disconnect; the actors keep running (the next server re-attaches to them)."""
        import ray

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            self._replicas.clear()
        if self._connected_here and ray.is_initialized():
            ray.shutdown()

    # 2. The launcher protocol
    def launch(self, spec: ReplicaSpec) -> None:
        if self._server_url:
            spec = replace(spec, server_url=self._server_url)
        with self._lock:
            replica = _Replica(spec=spec)
            self._replicas[spec.name] = replica
            self._create(replica)

    def drain(self, name: str) -> None:
        with self._lock:
            replica = self._replicas.get(name)
            if replica is None or replica.drain_deadline is not None:
                return
            replica.drain_deadline = time.monotonic() + self._stop_timeout
            if replica.actor is not None and replica.answered:
                replica.actor.drain.remote()
            else:  # still waiting for resources (or dead): nothing to finish
                if replica.actor is not None:
                    _kill(replica.actor)
                self._gone(name, replica)
        log.info("draining replica actor %s", name)

    def replicas(self) -> dict[str, ReplicaState]:
        now = time.monotonic()
        with self._lock:
            return {n: ReplicaState(spec=r.spec, running=r.answered and r.actor is not None, restarts=r.restarts,
                                    draining=r.drain_deadline is not None,
                                    pending_seconds=None if r.answered or r.actor is None else now - r.launched_at,
                                    outlives_server=True)
                    for n, r in self._replicas.items()}

    def drained(self) -> list[ReplicaSpec]:
        with self._lock:
            done, self._drained = self._drained, []
        return done

    def nodes(self) -> dict[str, str | None]:
        """The Ray node id each replica's actor runs on (None while it waits for resources)."""
        with self._lock:
            return {n: r.node for n, r in self._replicas.items()}

    # 3. Watching
    def _create(self, replica: _Replica) -> None:
        import ray

        options = actor_options(replica.spec, namespace=self._namespace)
        body = {**asdict(replica.spec), "cache_dir": str(replica.spec.cache_dir)}
        try:
            replica.actor = self._actor_class.options(**options).remote(body)
        except ValueError as exc:  # the name is still held by a dying actor: try again at the next pass
            log.warning("cannot create replica actor %s yet: %s", replica.spec.name, exc)
            try:
                _kill(ray.get_actor(replica.spec.name, namespace=self._namespace))
            except ValueError:
                pass
            replica.actor, replica.next_start = None, time.monotonic() + 1.0
            return
        replica.launched_at, replica.answered, replica.ping, replica.next_start = time.monotonic(), False, None, None
        log.info("created replica actor %s (%s)", replica.spec.name, options)

    def _watch(self) -> None:
        import ray

        while not self._stop.wait(self._poll):
            try:
                with self._lock:
                    replicas = list(self._replicas.items())
                    for _, replica in replicas:
                        if replica.actor is not None and replica.ping is None:
                            replica.ping = replica.actor.status.remote()
                    pings = [r.ping for _, r in replicas if r.ping is not None]
                ready, _ = ray.wait(pings, num_returns=len(pings), timeout=0) if pings else ([], [])
                ready_set = set(ready)
                with self._lock:
                    for name, replica in replicas:
                        if self._replicas.get(name) is replica:
                            self._check(name, replica, ready_set)
            except Exception:  # the cluster restarting must not end the watch
                log.exception("watching replica actors failed")

    def _check(self, name: str, replica: _Replica, ready: set) -> None:
        import ray

        now = time.monotonic()
        if replica.actor is None:  # dead: start again after the backoff
            if replica.drain_deadline is not None:
                self._gone(name, replica)
            elif replica.next_start is not None and now >= replica.next_start:
                self._create(replica)
            return
        if replica.ping is None or replica.ping not in ready:
            if replica.drain_deadline is not None and now > replica.drain_deadline:
                log.warning("replica actor %s did not drain in %.0f s; killing it", name, self._stop_timeout)
                _kill(replica.actor)
                self._gone(name, replica)
            return
        ping, replica.ping = replica.ping, None
        try:
            status = ray.get(ping)
        except ray.exceptions.RayError as exc:
            self._died(name, replica, f"the actor died ({type(exc).__name__})")
            return
        replica.answered, replica.node = True, status["node"]
        if status["exit"] is not None:
            _kill(replica.actor)
            self._died(name, replica, f"its worker exited with {status['exit']}")

    def _died(self, name: str, replica: _Replica, reason: str) -> None:
        replica.actor, replica.ping, replica.answered, replica.node = None, None, False, None
        if replica.drain_deadline is not None:
            self._gone(name, replica)
            return
        replica.restarts += 1
        delay = min(self._max_backoff, 2 ** min(replica.restarts, 6))
        replica.next_start = time.monotonic() + delay
        log.warning("replica actor %s: %s; starting it again in %d s", name, reason, delay)

    def _gone(self, name: str, replica: _Replica) -> None:
        del self._replicas[name]
        self._drained.append(replica.spec)
        log.info("replica actor %s drained", name)


def _kill(actor: Any) -> None:
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone
        pass
