"""Run a background task on one API server at a time: the holder of a leader lease.

Several API servers share one database (and one Ray namespace). The fleet manager must run on only one of
them: two would each launch the replicas an endpoint wants, and a starting one would revoke the identities of
replicas the other launched. `LeaderElected` starts the task on the server that holds the lease, stops it if
the lease is lost (a stalled server, a database it cannot reach), and hands the lease over on a clean stop; a
`kill -9`'d leader's lease expires and another server takes over."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

log = logging.getLogger("sdfleet.fleet.leadership")


class LeaderLease(Protocol):
    name: str
    holder: str

    def hold(self, seconds: float) -> tuple[bool, datetime]:
        """Take or renew the lease: (held, until when the current lease runs)."""

    def release(self) -> None:
        """Give the lease up now."""


class Task(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class LeaderElected:
    """Starts `factory()`'s task while this server holds `lease`, stops it when it no longer does.

    The holder renews once a third of the lease has run; a follower only looks again when the lease it saw
    expires, so leadership costs about one commit every `seconds / 3` on the leader and one per `seconds` on
    each follower, however often `interval` ticks."""

    def __init__(self, *, lease: LeaderLease, factory: Callable[[], Task], clock: Callable[[], datetime],
                 seconds: float = 15.0, interval: float = 1.0) -> None:
        self._lease = lease
        self._factory = factory
        self._clock = clock
        self._seconds = seconds
        self._interval = interval
        self._task: Task | None = None
        self._until: datetime | None = None  #: when the lease last seen (ours or another's) runs out
        self._renew_at: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Try once at once (a single server manages its fleet from its first second), then keep looking."""
        self.tick()
        self._thread = threading.Thread(target=self._run, name=f"leader-{self._lease.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._task is not None:
            self._step_down("the server is stopping")
            try:
                self._lease.release()
            except Exception:  # the database is gone: the lease expires on its own
                log.exception("releasing the %s lease failed", self._lease.name)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except Exception:  # a database restart must not end leadership checks
                log.exception("checking the %s lease failed", self._lease.name)

    def tick(self) -> None:
        """One look at the lease: renew it, take it over, or step down."""
        now = self._clock()
        if self._task is not None and self._renew_at is not None and now < self._renew_at:
            return  # leading, and not yet time to renew
        if self._task is None and self._until is not None and now < self._until:
            return  # following: the leader's lease runs until then
        try:
            held, until = self._lease.hold(self._seconds)
        except Exception:
            if self._task is not None and self._until is not None and now >= self._until:
                self._step_down("its lease ran out while the database could not be reached")
            raise
        self._until = until
        if held:
            self._renew_at = now + (until - now) / 3
            if self._task is None:
                log.info("%s: this server (%s) leads", self._lease.name, self._lease.holder)
                task = self._factory()
                task.start()
                self._task = task
        elif self._task is not None:
            self._step_down("another server holds the lease")

    def _step_down(self, why: str) -> None:
        task, self._task = self._task, None
        log.warning("%s: this server stops leading: %s", self._lease.name, why)
        if task is not None:
            task.stop()
