"""PostgreSQL LISTEN/NOTIFY: fans job and queue notifications out to every API server.

Each NOTIFY is a transaction PostgreSQL counts (no WAL write); topics published within BATCH_SECONDS of
each other travel in one transaction, so live progress costs a few transactions a second per server
whatever the number of jobs and steps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

log = logging.getLogger("sdfleet.store.notify")
CHANNEL = "sdfleet_events"
MAX_PAYLOAD = 7000  # PostgreSQL's limit is 8000 bytes; topics are short
BATCH_SECONDS = 0.05


def _conninfo(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


class PgNotifyBridge:
    """Publishes topics with NOTIFY and delivers other servers' topics to `deliver` from a listener thread."""

    def __init__(self, database_url: str, *, deliver: Callable[[str], None], channel: str = CHANNEL) -> None:
        self._conninfo = _conninfo(database_url)
        self._deliver = deliver
        self._channel = channel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publisher: psycopg.Connection | None = None
        self._publish_lock = threading.Lock()
        self._listening = threading.Event()
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self._has_pending = threading.Event()
        self._sender: threading.Thread | None = None

    def publish(self, topic: str) -> None:
        """Queue the topic for the next NOTIFY batch (sent at once when the bridge is not started)."""
        if len(topic) > MAX_PAYLOAD:
            return
        with self._pending_lock:
            if topic not in self._pending or topic.startswith("live:"):
                self._pending.append(topic)
        if self._sender is None:
            self.flush()
        else:
            self._has_pending.set()

    def flush(self) -> None:
        """NOTIFY the queued topics in one transaction; a failure is logged, never raised (waiters re-check
        the database anyway)."""
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        with self._publish_lock:
            try:
                if self._publisher is None or self._publisher.closed:
                    self._publisher = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                with self._publisher.transaction():
                    for topic in batch:
                        self._publisher.execute("SELECT pg_notify(%s, %s)", (self._channel, topic))
            except psycopg.Error as exc:
                log.warning("NOTIFY of %d topic(s) failed: %s", len(batch), exc)
                self._publisher = None

    def _send_forever(self) -> None:
        while not self._stop.is_set():
            self._has_pending.wait()
            self._has_pending.clear()
            self._stop.wait(BATCH_SECONDS)  # gather what is published meanwhile into the same transaction
            self.flush()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen_forever, name="pg-listen", daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._send_forever, name="pg-notify", daemon=True)
        self._sender.start()
        self._listening.wait(timeout=10)

    def _listen_forever(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {self._channel}")
                    self._listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._deliver(note.payload)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("LISTEN connection lost (%s); reconnecting", exc)
                    self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._has_pending.set()
        if self._sender is not None:
            self._sender.join(timeout=5)
        self.flush()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._publish_lock:
            if self._publisher is not None:
                self._publisher.close()
