"""Local launcher: `sdfleet worker` subprocesses on this host, restarted with backoff when they crash."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("sdfleet.fleet.launcher")


@dataclass
class ReplicaSpec:
    """One worker process to keep running."""

    name: str
    server_url: str
    token: str
    device: str
    cache_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Replica:
    spec: ReplicaSpec
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    stopping: bool = False


class LocalLauncher:
    """Keeps replicas alive as subprocesses; stops them (SIGTERM, then SIGKILL) on `stop`."""

    def __init__(self, *, stop_timeout: float = 20.0, max_backoff: float = 60.0) -> None:
        self._replicas: dict[str, _Replica] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_timeout = stop_timeout
        self._max_backoff = max_backoff

    def add(self, spec: ReplicaSpec) -> None:
        """Start (and keep alive) one replica."""
        with self._lock:
            replica = _Replica(spec=spec)
            self._replicas[spec.name] = replica
            self._spawn(replica)

    def remove(self, name: str) -> None:
        """Drain one replica: SIGTERM lets it finish its job before exiting."""
        with self._lock:
            replica = self._replicas.pop(name, None)
        if replica is not None:
            self._terminate(replica)

    def pids(self) -> dict[str, int | None]:
        with self._lock:
            return {n: (r.process.pid if r.process else None) for n, r in self._replicas.items()}

    def _spawn(self, replica: _Replica) -> None:
        spec = replica.spec
        env = {**os.environ, "SDFLEET_WORKER_TOKEN": spec.token, **spec.extra_env}
        cmd = [sys.executable, "-m", "sdfleet.cli", "worker", "--server", spec.server_url, "--device", spec.device,
               "--cache-dir", str(spec.cache_dir), "--name", spec.name]
        replica.process = subprocess.Popen(cmd, env=env, start_new_session=True)
        log.info("started worker %s (pid %d, %s)", spec.name, replica.process.pid, spec.device)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="local-launcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                for replica in self._replicas.values():
                    proc = replica.process
                    if proc is None or proc.poll() is None:
                        if proc is None and time.monotonic() >= replica.next_start:
                            self._spawn(replica)
                        continue
                    replica.restarts += 1
                    delay = min(self._max_backoff, 2 ** min(replica.restarts, 6))
                    log.warning("worker %s exited with %s; restarting in %d s", replica.spec.name, proc.returncode,
                                delay)
                    replica.process = None
                    replica.next_start = time.monotonic() + delay

    def _terminate(self, replica: _Replica) -> None:
        proc = replica.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=self._stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not stop in %.0f s; killing it", replica.spec.name, self._stop_timeout)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """Stop watching and stop every replica."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            replicas = list(self._replicas.values())
            self._replicas.clear()
        for replica in replicas:
            self._terminate(replica)
