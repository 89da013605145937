"""The lease reaper: puts jobs of workers that stopped answering back in the queue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("sdfleet.fleet.reaper")


class LeaseReaper:
    """Calls `reap()` every `interval` seconds on a daemon thread."""

    def __init__(self, reap: Callable[[], None], *, interval: float) -> None:
        self._reap = reap
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease-reaper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._reap()
            except Exception:  # keep reaping whatever one round hit (database restart …)
                log.exception("reaping expired leases failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
