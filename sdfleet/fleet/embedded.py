"""The embedded default: `serve` runs N local worker processes for the `default` endpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sdfleet.fleet.local_launcher import LocalLauncher, ReplicaSpec

log = logging.getLogger("sdfleet.fleet")


class EmbeddedWorkers:
    """Registers worker identities and keeps their processes running while the server runs."""

    def __init__(self, *, count: int, server_url: str, device: str, cache_dir: Path,
                 register: Callable[[str], tuple[str, str]], revoke: Callable[[str], None],
                 launcher: LocalLauncher | None = None) -> None:
        self._count = count
        self._server_url = server_url
        self._device = device
        self._cache_dir = cache_dir
        self._register = register
        self._revoke = revoke
        self._launcher = launcher or LocalLauncher()
        self._worker_ids: list[str] = []

    def start(self) -> None:
        for i in range(self._count):
            worker_id, token = self._register(f"local-{i}")
            self._worker_ids.append(worker_id)
            self._launcher.add(ReplicaSpec(name=f"local-{i}", server_url=self._server_url, token=token,
                                           device=self._device, cache_dir=self._cache_dir))
        self._launcher.start()
        if self._count:
            log.info("%d local worker(s) on %s", self._count, self._device)

    def stop(self) -> None:
        self._launcher.stop()
        for worker_id in self._worker_ids:
            try:
                self._revoke(worker_id)
            except Exception:  # the database may already be gone at shutdown
                log.warning("could not revoke worker %s", worker_id)
