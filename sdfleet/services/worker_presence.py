"""Worker presence without a commit per request: tokens authenticated from memory, `last_seen_at` written for
every worker this server saw in one transaction per `flush_seconds`, reports written only when they change.

A revocation takes effect at once on every server: the revoking one forgets the worker, and the others when
its `revoked:<worker id>` topic reaches them by NOTIFY (`WorkerService.revoke`). A NOTIFY missed while a
listener reconnects is caught by the next flush (at most `flush_seconds` later), when the batch finds it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from sdfleet.domain.workers import WorkerRecord
from sdfleet.store.workers import SqlWorkerRegistry

#: how often a server writes who it saw: well under the `lost_after` of endpoints (at least 60 s)
FLUSH_SECONDS = 10.0
#: memory figures in a report unchanged otherwise are written at most this often
REPORT_REFRESH_SECONDS = 30.0


class WorkerPresence:
    """Authenticated workers and when they were last seen, kept in memory and written in batches."""

    def __init__(self, registry: SqlWorkerRegistry, *, clock: Callable[[], datetime],
                 monotonic: Callable[[], float] = time.monotonic, flush_seconds: float = FLUSH_SECONDS) -> None:
        self._registry = registry
        self._clock = clock
        self._monotonic = monotonic
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._by_token: dict[str, WorkerRecord] = {}
        self._unwritten: set[str] = set()  #: seen since the last flush
        self._reports: dict[str, tuple[tuple, float]] = {}  #: what was last written of each worker's report
        self._last_flush = monotonic()

    def authenticate(self, token_hash: str) -> WorkerRecord | None:
        """The worker of a token hash (from memory once known); None when unknown."""
        with self._lock:
            worker = self._by_token.get(token_hash)
        if worker is None:
            worker = self._registry.find_by_token(token_hash)
            if worker is not None and worker.revoked_at is None:
                with self._lock:
                    self._by_token[token_hash] = worker
        return worker

    def forget(self, worker_id: str) -> None:
        """The worker was revoked (here, or on another server that said so): its token is refused from now on."""
        with self._lock:
            for key in [k for k, w in self._by_token.items() if w.id == worker_id]:
                del self._by_token[key]
            self._unwritten.discard(worker_id)
            self._reports.pop(worker_id, None)

    def seen(self, worker_id: str) -> None:
        """The worker made a request: remembered, written with the next flush."""
        with self._lock:
            self._unwritten.add(worker_id)
        self.flush_if_due()

    def report_changed(self, worker_id: str, report: tuple) -> bool:
        """Whether a worker's report (status, device, models) differs from the one last written, or its
        memory figures are due: the caller writes it then, and only then."""
        now = self._monotonic()
        with self._lock:
            last = self._reports.get(worker_id)
            if last is not None and last[0] == report and now - last[1] < REPORT_REFRESH_SECONDS:
                self._unwritten.add(worker_id)
                return False
            self._reports[worker_id] = (report, now)
            return True

    def flush_if_due(self) -> None:
        if self._monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write `last_seen_at` of every worker seen since the last flush (one transaction) and drop the tokens
        revoked meanwhile by another server."""
        if not self._flushing.acquire(blocking=False):
            return  # another request thread is flushing
        try:
            with self._lock:
                ids, self._unwritten = sorted(self._unwritten), set()
                self._last_flush = self._monotonic()
            if not ids:
                return
            for worker_id in self._registry.touch(ids, now=self._clock()):
                self.forget(worker_id)
        finally:
            self._flushing.release()
