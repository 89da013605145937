"""The launcher interface: how the fleet starts, keeps alive and drains endpoint replicas.

`local` runs subprocesses on this host; `ray` (ray_launcher.py) runs each replica as a named Ray actor on
whichever node Ray picks. `RoutingLauncher` sends each endpoint's replicas to the launcher it names."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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
    endpoint: str = ""
    worker_id: str = ""
    launcher: str = "local"  #: which launcher runs it (the endpoint's `launcher`)
    resources: dict[str, float] = field(default_factory=dict)  #: what a `ray` replica asks Ray for


@dataclass(frozen=True)
class ReplicaState:
    """What the launcher knows of one replica."""

    spec: ReplicaSpec
    running: bool  #: a process (or actor) is alive now
    restarts: int  #: times it was restarted after exiting on its own
    draining: bool  #: asked to finish its job and exit; it is not restarted
    pending_seconds: float | None = None  #: waiting this long for a place to run (Ray: for resources)
    outlives_server: bool = False  #: keeps running when the server stops; the next server re-attaches to it


class Launcher(Protocol):
    """Starts replicas, restarts crashed ones with backoff, drains on request, stops all on `stop`."""

    def start(self) -> None:
        """Begin watching replicas."""

    def launch(self, spec: ReplicaSpec) -> None:
        """Start one replica and keep it alive until drained or stopped."""

    def drain(self, name: str) -> None:
        """Ask a replica to finish its current job and exit (returns at once; it is not restarted)."""

    def replicas(self) -> dict[str, ReplicaState]:
        """Every replica not yet gone, draining ones included."""

    def drained(self) -> list[ReplicaSpec]:
        """Replicas that exited after `drain` since the last call (their identities can be revoked)."""

    def stop(self) -> None:
        """Stop every replica (draining them within a timeout) and stop watching."""


class RoutingLauncher:
    """One launcher per `launcher` name; each replica goes to the one its spec names.

    A name with no launcher configured (`ray` without SDFLEET_RAY_ADDRESS) fails the launch with OSError,
    which the fleet manager records as the endpoint's failure reason. A launcher in `on_demand` (name → whether
    an endpoint uses it now) starts with the server only if used — so a server whose endpoints are all local
    never imports ray nor needs its cluster up — and otherwise at its first replica; one that cannot start
    (the cluster is unreachable) leaves the others running and fails its endpoints with the reason."""

    def __init__(self, launchers: dict[str, Launcher], *, missing: dict[str, str] | None = None,
                 on_demand: dict[str, Callable[[], bool]] | None = None) -> None:
        self._launchers = launchers
        self._missing = dict(missing or {})  #: launcher name → why it is not available
        self._on_demand = dict(on_demand or {})
        self._started: dict[str, Launcher] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        for name in self._launchers:
            wanted = self._on_demand.get(name)
            if wanted is None:
                self._start(name)
                continue
            if wanted():
                try:
                    self._start(name)
                except OSError as exc:  # retried at the endpoint's next launch
                    log.error("%s", exc)

    def _start(self, name: str) -> Launcher:
        with self._lock:
            launcher = self._started.get(name)
            if launcher is None:
                launcher = self._launchers[name]
                try:
                    launcher.start()
                except Exception as exc:
                    raise OSError(f"the {name} launcher cannot start: {exc}") from exc
                self._started[name] = launcher
            return launcher

    @property
    def started(self) -> list[str]:
        """Names of the launchers running now."""
        return list(self._started)

    def launch(self, spec: ReplicaSpec) -> None:
        if spec.launcher not in self._launchers:
            raise OSError(self._missing.get(spec.launcher, f"no launcher {spec.launcher!r} on this server"))
        self._start(spec.launcher).launch(spec)

    def _running(self) -> list[Launcher]:
        with self._lock:
            return list(self._started.values())

    def drain(self, name: str) -> None:
        for launcher in self._running():
            if name in launcher.replicas():
                launcher.drain(name)

    def replicas(self) -> dict[str, ReplicaState]:
        return {name: state for launcher in self._running() for name, state in launcher.replicas().items()}

    def drained(self) -> list[ReplicaSpec]:
        return [spec for launcher in self._running() for spec in launcher.drained()]

    def stop(self) -> None:
        for launcher in self._running():
            launcher.stop()
