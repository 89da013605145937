"""The lease reaper: puts jobs of workers that stopped answering back in the queue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("sdfleet.fleet.reaper")


class LeaseReaper:
    """Calls `reap()` every `interval` seconds on a daemon thread; `on_stop()` once the thread has stopped."""

    def __init__(self, reap: Callable[[], None], *, interval: float, on_stop: Callable[[], None] | None = None) -> None:
        self._reap = reap
        self._interval = interval
        self._on_stop = on_stop
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
        if self._on_stop is not None:
            try:
                self._on_stop()
            except Exception:  # stopping goes on (the database may be gone already)
                log.exception("stopping the lease loop failed")
