"""The launcher interface: how the fleet starts, keeps alive and drains endpoint replicas.

`local` runs subprocesses on this host; a Ray launcher (actors with `num_gpus=1`) implements the same
protocol without touching the fleet manager or the autoscaler."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


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


@dataclass(frozen=True)
class ReplicaState:
    """What the launcher knows of one replica."""

    spec: ReplicaSpec
    running: bool  #: a process (or actor) is alive now
    restarts: int  #: times it was restarted after exiting on its own
    draining: bool  #: asked to finish its job and exit; it is not restarted


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
