"""Local launcher: `sdfleet worker` subprocesses on this host, restarted with backoff when they crash (not when
the server refused their token: a revoked identity ends the replica)."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from sdfleet.domain.workers import EXIT_TOKEN_REFUSED
from sdfleet.fleet.launcher import ReplicaSpec, ReplicaState
from sdfleet.fleet.worker_env import worker_environment

__all__ = ["LocalLauncher", "ReplicaSpec"]

log = logging.getLogger("sdfleet.fleet.launcher")


@dataclass
class _Replica:
    spec: ReplicaSpec
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    drain_deadline: float | None = None


class LocalLauncher:
    """Keeps replicas alive as subprocesses; drains with SIGTERM (SIGKILL after `stop_timeout`)."""

    def __init__(self, *, stop_timeout: float = 90.0, max_backoff: float = 60.0, poll_interval: float = 0.5,
                 shutdown_grace: float = 5.0) -> None:
        self._shutdown_grace = shutdown_grace
        self._replicas: dict[str, _Replica] = {}
        self._drained: list[ReplicaSpec] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_timeout = stop_timeout
        self._max_backoff = max_backoff
        self._poll = poll_interval

    def launch(self, spec: ReplicaSpec) -> None:
        """Start (and keep alive) one replica."""
        with self._lock:
            replica = _Replica(spec=spec)
            self._replicas[spec.name] = replica
            self._spawn(replica)

    add = launch

    def drain(self, name: str) -> None:
        """SIGTERM: the worker finishes its job (or hands it back) and exits; the watcher collects it."""
        with self._lock:
            replica = self._replicas.get(name)
            if replica is None or replica.drain_deadline is not None:
                return
            replica.drain_deadline = time.monotonic() + self._stop_timeout
            proc = replica.process
        if proc is not None and proc.poll() is None:
            _signal(proc, signal.SIGTERM)
        log.info("draining worker %s", name)

    def remove(self, name: str) -> None:
        """Drain one replica and wait until it has exited."""
        with self._lock:
            replica = self._replicas.pop(name, None)
        if replica is not None:
            self._terminate(replica)

    def replicas(self) -> dict[str, ReplicaState]:
        with self._lock:
            return {n: ReplicaState(spec=r.spec, running=r.process is not None and r.process.poll() is None,
                                    restarts=r.restarts, draining=r.drain_deadline is not None)
                    for n, r in self._replicas.items()}

    def drained(self) -> list[ReplicaSpec]:
        with self._lock:
            done, self._drained = self._drained, []
        return done

    def pids(self) -> dict[str, int | None]:
        with self._lock:
            return {n: (r.process.pid if r.process else None) for n, r in self._replicas.items()}

    def _spawn(self, replica: _Replica) -> None:
        spec = replica.spec
        env = worker_environment(os.environ, token=spec.token, extra=spec.extra_env)
        cmd = [sys.executable, "-m", "sdfleet.cli", "worker", "--server", spec.server_url, "--device", spec.device,
               "--cache-dir", str(spec.cache_dir), "--name", spec.name,
               # a `kill -9`'d server runs no clean-up: the replica watches for its parent's death itself
               "--parent-pid", str(os.getpid())]
        replica.process = subprocess.Popen(cmd, env=env, start_new_session=True)
        log.info("started worker %s (pid %d, %s)", spec.name, replica.process.pid, spec.device)

    def start(self) -> None:
        # If this process exits without `stop` (a daemon server thread cut short), take the replicas along:
        # they run in their own sessions and would otherwise outlive the server.
        atexit.register(self._kill_all)
        self._thread = threading.Thread(target=self._watch, name="local-launcher", daemon=True)
        self._thread.start()

    def _kill_all(self) -> None:
        with self._lock:
            procs = [r.process for r in self._replicas.values() if r.process is not None]
        for proc in procs:
            if proc.poll() is None:
                _signal(proc, signal.SIGKILL)

    def _watch(self) -> None:
        while not self._stop.wait(self._poll):
            with self._lock:
                for name, replica in list(self._replicas.items()):
                    self._check(name, replica)

    def _check(self, name: str, replica: _Replica) -> None:
        proc = replica.process
        if replica.drain_deadline is not None:
            if proc is None or proc.poll() is not None:
                del self._replicas[name]
                self._drained.append(replica.spec)
                log.info("worker %s drained", name)
            elif time.monotonic() > replica.drain_deadline:
                log.warning("worker %s did not drain in %.0f s; killing it", name, self._stop_timeout)
                _signal(proc, signal.SIGKILL)
            return
        if proc is None:
            if time.monotonic() >= replica.next_start:
                self._spawn(replica)
            return
        if proc.poll() is None:
            return
        if proc.returncode == EXIT_TOKEN_REFUSED:
            # Its identity is revoked: the same token would be refused again. The replica ends as if drained;
            # the fleet manager revokes the identity and starts a replacement with a new one if still wanted.
            del self._replicas[name]
            self._drained.append(replica.spec)
            log.warning("worker %s: the server refused its token; not restarting it", name)
            return
        replica.restarts += 1
        delay = min(self._max_backoff, 2 ** min(replica.restarts, 6))
        log.warning("worker %s exited with %s; restarting in %d s", name, proc.returncode, delay)
        replica.process = None
        replica.next_start = time.monotonic() + delay

    def _terminate(self, replica: _Replica) -> None:
        proc = replica.process
        if proc is None or proc.poll() is not None:
            return
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=self._stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not stop in %.0f s; killing it", replica.spec.name, self._stop_timeout)
            _signal(proc, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop watching and stop every replica, all at once.

        The server is already gone when this runs, so a job in flight cannot be completed: SIGTERM, then a
        second SIGTERM after `shutdown_grace` (the worker hands its job back at once), then SIGKILL."""
        self._stop.set()
        atexit.unregister(self._kill_all)
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            replicas = list(self._replicas.values())
            self._replicas.clear()
        alive = [r.process for r in replicas if r.process is not None and r.process.poll() is None]
        for signum, wait in ((signal.SIGTERM, self._shutdown_grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            for proc in alive:
                _signal(proc, signum)
            deadline = time.monotonic() + wait
            for proc in alive:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            alive = [p for p in alive if p.poll() is None]
            if not alive:
                return


def _signal(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass
