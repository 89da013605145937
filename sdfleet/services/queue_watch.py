"""Which endpoints may have queued jobs, so long-polling workers claim only when there may be work.

A claim is a write transaction; a thousand idle workers re-claiming every second would be a thousand
commits a second. Instead an endpoint is `maybe_work` after a queue notification (a submission or a requeue,
here or on another server through NOTIFY) and until a claim finds nothing; a lost notification is caught by
one shared `queued_endpoints()` query every `recheck_seconds` while workers wait, whatever their number."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sdfleet.services.notifier import queue_topic

#: how often (at most) one server re-reads which endpoints have queued jobs while workers wait
RECHECK_SECONDS = 30.0


class QueueWatch:
    """Per endpoint: a version raised by every queue notification and whether a claim found it empty since."""

    def __init__(self, *, queued_endpoints: Callable[[], set[str]], notify: Callable[[str], None],
                 recheck_seconds: float = RECHECK_SECONDS, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._queued_endpoints = queued_endpoints
        self._notify = notify  #: wakes this server's waiters of a topic
        self._recheck_seconds = recheck_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._empty_at: dict[str, int] = {}  #: endpoint → version at which a claim found nothing
        self._last_check = monotonic()
        self._checking = threading.Lock()

    def version(self, endpoint: str) -> int:
        with self._lock:
            return self._versions.get(endpoint, 0)

    def maybe_work(self, endpoint: str) -> bool:
        """Whether a claim on the endpoint may find a job (False only after an empty claim and no news since)."""
        with self._lock:
            return self._empty_at.get(endpoint) != self._versions.get(endpoint, 0)

    def found_empty(self, endpoint: str, version: int) -> None:
        """A claim started at `version` found nothing."""
        with self._lock:
            if self._versions.get(endpoint, 0) == version:
                self._empty_at[endpoint] = version

    def queued(self, topic: str) -> None:
        """A `queue:<endpoint>` topic was woken (a job was queued or handed back)."""
        endpoint = topic.split(":", 1)[1]
        with self._lock:
            self._versions[endpoint] = self._versions.get(endpoint, 0) + 1

    def recheck_if_due(self) -> None:
        """At most every `recheck_seconds` per server: one query for the endpoints with queued jobs."""
        if self._monotonic() - self._last_check < self._recheck_seconds:
            return
        if not self._checking.acquire(blocking=False):
            return
        try:
            self._last_check = self._monotonic()
            for endpoint in self._queued_endpoints():
                if not self.maybe_work(endpoint):
                    self._notify(queue_topic(endpoint))  # raises its version through `queued`
        finally:
            self._checking.release()
