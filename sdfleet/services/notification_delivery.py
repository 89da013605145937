"""The delivery worker: runs in every API server, fans events out, sends due deliveries under leases.

Each pass: (1) turn new outbox events into deliveries, (2) lease as many due deliveries as there are
free send slots, (3) send each on a small thread pool (a hanging receiver holds one slot for at most
the webhook timeout), (4) record the attempt under the lease. It sleeps until the next delivery is due,
a commit in this process writes an event, or a send finishes; other servers' events are seen within
`poll_seconds`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime

from sdfleet.domain.ids import new_id
from sdfleet.domain.notifications import Channel, RetryPolicy, SendResult
from sdfleet.services.mailer import SmtpMailer
from sdfleet.services.notification_links import Links
from sdfleet.services.notification_messages import email_message, webhook_body
from sdfleet.services.webhook_sender import WebhookSender
from sdfleet.store.notification_deliveries import ClaimedDelivery, SqlDeliveries

log = logging.getLogger("sdfleet.notifications")


class Dispatcher:
    """Turns a leased delivery into a signed webhook request or a mail, and sends it."""

    def __init__(self, *, webhooks: WebhookSender, mailer: SmtpMailer | None, links: Links,
                 clock: Callable[[], datetime], username_of: Callable[[str], str] = lambda _user_id: "") -> None:
        self._webhooks = webhooks
        self._clock = clock
        self._mailer = mailer
        self._links = links
        self._username_of = username_of

    def __call__(self, claimed: ClaimedDelivery) -> SendResult:
        event, sub = claimed.event, claimed.subscription
        try:
            # webhook-timestamp is the attempt's time (receivers refuse old ones); webhook-id stays the event's.
            if sub.channel is Channel.WEBHOOK:
                return self._webhooks.send(url=claimed.delivery.target or sub.target, secret=sub.secret or "",
                                           message_id=event.id, timestamp=self._clock(),
                                           body=webhook_body(event, self._links))
            if self._mailer is None:
                return SendResult(ok=False, latency_ms=0, error="e-mail is not configured (SDFLEET_SMTP_URL)")
            message = email_message(event, sub, links=self._links, mail_from=self._mailer.mail_from,
                                    username=self._username_of(sub.user_id))
            return self._mailer.send(message)
        except Exception as exc:  # a bug here must cost one attempt, never the worker
            log.exception("delivery %s could not be prepared", claimed.delivery.id)
            return SendResult(ok=False, latency_ms=0, error=f"internal error: {type(exc).__name__}")


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """How the delivery worker paces itself."""

    policy: RetryPolicy = RetryPolicy()
    #: deliveries failing for good in a row before a subscription is disabled
    disable_after: int = 5
    #: a lease outlives the longest attempt (webhook timeout, SMTP timeout) with room to spare
    lease_seconds: float = 120.0
    #: a safety net only: this server's commits wake it at once, and every server fans out its own events
    poll_seconds: float = 30.0
    concurrency: int = 4


class DeliveryWorker:
    """Background task of the API process (started and stopped with the app)."""

    def __init__(self, *, deliveries: SqlDeliveries, send: Callable[[ClaimedDelivery], SendResult],
                 clock: Callable[[], datetime], settings: WorkerSettings = WorkerSettings()) -> None:
        self._deliveries = deliveries
        self._send = send
        self._clock = clock
        self._settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[Future] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    # 1. Life cycle
    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self._settings.concurrency, thread_name_prefix="sdfleet-notify")
        self._thread = threading.Thread(target=self._run, name="notification-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            with self._lock:
                pending = set(self._in_flight)
            wait_futures(pending, timeout=5)  # unfinished ones keep their lease; another server retries them
            self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """An event was committed (or a send finished): look for work now."""
        self._wake.set()

    # 2. The loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._fan_out()
                self._claim_and_submit()
                timeout = self._sleep_seconds()
            except Exception:  # the database may be restarting: try again shortly
                log.exception("notification delivery pass failed")
                timeout = self._settings.poll_seconds
            self._wake.wait(timeout)
            self._wake.clear()

    def _fan_out(self) -> None:
        while self._deliveries.fan_out(now=self._clock()) > 0:
            pass

    def _claim_and_submit(self) -> None:
        with self._lock:
            free = self._settings.concurrency - len(self._in_flight)
        if free <= 0 or self._pool is None:
            return
        for item in self._deliveries.claim(owner=self.owner, now=self._clock(),
                                           lease_seconds=self._settings.lease_seconds, limit=free):
            future = self._pool.submit(self._deliver, item)
            with self._lock:
                self._in_flight.add(future)
            future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._in_flight.discard(future)
        self._wake.set()

    def _sleep_seconds(self) -> float:
        with self._lock:
            if len(self._in_flight) >= self._settings.concurrency:
                return self._settings.poll_seconds  # a finishing send wakes us
        due = self._deliveries.next_due(now=self._clock())
        if due is None:
            return self._settings.poll_seconds
        return max(0.0, min(self._settings.poll_seconds, (due - self._clock()).total_seconds()))

    def _deliver(self, claimed: ClaimedDelivery) -> None:
        result = self._send(claimed)
        try:
            outcome = self._deliveries.record(claimed, result, now=self._clock(), policy=self._settings.policy,
                                              disable_after=self._settings.disable_after)
        except Exception:
            # Not recorded: the lease runs out and the delivery is tried again (at least once).
            log.exception("recording delivery %s failed", claimed.delivery.id)
            return
        if not result.ok:
            log.info("delivery %s (%s to %s) attempt %d failed: %s", claimed.delivery.id, claimed.event.type.value,
                     claimed.subscription.channel.value, claimed.delivery.attempts + 1, result.error)
        if outcome.disabled:
            log.warning("subscription %s disabled after repeated failures", claimed.subscription.id)
