"""In-process wake-ups for long polls and event streams (asyncio waiters, notified from any thread).

With several API servers on PostgreSQL, every notification is also published with NOTIFY and each
server's listener wakes its own waiters (`sdfleet/store/pg_notify.py`); waiters still re-check the
database on a short timeout, so a lost notification only delays them (docs/decisions.md)."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable


def job_topic(job_id: str) -> str:
    """Woken when a job changes (progress, outputs, an end, a cancel request)."""
    return f"job:{job_id}"


def queue_topic(endpoint: str | None) -> str:
    """Woken when a job is queued for (or handed back to) an endpoint: its workers' long polls."""
    return f"queue:{endpoint}"


def user_topic(user_id: str) -> str:
    """Woken when a user's queue changes (ComfyUI's status messages)."""
    return f"user:{user_id}"


def worker_revoked_topic(worker_id: str) -> str:
    """Published when a worker's token is revoked: every server drops it from its presence cache at once."""
    return f"revoked:{worker_id}"


class Notifier:
    """Topics (`job:<id>`, `queue:<endpoint>`) that async waiters sleep on and any thread can wake."""

    def __init__(self, *, publish: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        #: sends a topic to the other API servers (PostgreSQL NOTIFY); None on one server
        self.publish = publish
        self._handlers: list[tuple[str, Callable[[str], None]]] = []

    def on_topic(self, prefix: str, handler: Callable[[str], None]) -> None:
        """Also hand every topic starting with `prefix` (woken here or on another server) to `handler`
        (the queue watch, live progress); handlers must be quick and never raise."""
        self._handlers.append((prefix, handler))

    def notify(self, topic: str) -> None:
        """Wake every waiter of `topic`, here and (when published) on the other API servers."""
        self.wake(topic)
        if self.publish is not None:
            self.publish(topic)

    def wake(self, topic: str) -> None:
        """Wake this process's waiters of `topic` (what a notification from another server does)."""
        for prefix, handler in self._handlers:
            if topic.startswith(prefix):
                handler(topic)
        with self._lock:
            waiters = list(self._waiters.get(topic, ()))
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def waiting(self, topic: str) -> int:
        """How many waiters sleep on `topic` now (long polls in progress; tests and diagnostics)."""
        with self._lock:
            return len(self._waiters.get(topic, ()))

    async def wait(self, topic: str, timeout: float) -> bool:
        """Sleep until `topic` is notified or `timeout` passes; True when notified."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._waiters[topic].add(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters[topic].discard(entry)
                if not self._waiters[topic]:
                    del self._waiters[topic]


class PreviewStore:
    """The latest preview image of each running job, kept in memory and bounded."""

    def __init__(self, *, max_jobs: int = 256) -> None:
        self._lock = threading.Lock()
        self._previews: dict[str, bytes] = {}
        self._max = max_jobs

    def put(self, job_id: str, png: bytes) -> None:
        with self._lock:
            self._previews.pop(job_id, None)
            self._previews[job_id] = png
            while len(self._previews) > self._max:
                self._previews.pop(next(iter(self._previews)))

    def get(self, job_id: str) -> bytes | None:
        with self._lock:
            return self._previews.get(job_id)

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._previews.pop(job_id, None)
