"""In-process sliding-window limiter (per API server; see docs/decisions.md)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """Counts events per key within a window; `retry_after` tells when the next one is allowed."""

    def __init__(self, *, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self._window:
            events.popleft()
        return events

    def retry_after(self, key: str) -> int:
        """Seconds to wait before `key` may act again; 0 when allowed now."""
        with self._lock:
            now = self._clock()
            events = self._prune(key, now)
            if len(events) < self._limit:
                return 0
            return max(1, math.ceil(events[0] + self._window - now))

    def record(self, key: str) -> None:
        """Count one event for `key`."""
        with self._lock:
            now = self._clock()
            self._prune(key, now).append(now)
            if len(self._events) > 100_000:  # bound memory under a flood of distinct keys
                for stale in [k for k, v in self._events.items() if not v]:
                    del self._events[stale]

    def reset(self, key: str) -> None:
        """Forget `key` (after a successful login)."""
        with self._lock:
            self._events.pop(key, None)
