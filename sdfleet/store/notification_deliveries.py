"""Deliveries: fan events out to subscriptions, lease due deliveries, record attempts, keep the log.

Several API servers run delivery workers on one database. Fan-out takes each outbox event exactly once
(rows locked with SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite). A delivery is sent under a lease
with a fencing token: a server that dies mid-send loses its lease and another retries (at least once);
a late result carrying a stale token is dropped, so nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from sdfleet.domain.ids import new_id
from sdfleet.domain.notifications import (
    Channel,
    Delivery,
    DeliveryStatus,
    EventType,
    NotificationEvent,
    RetryPolicy,
    Scope,
    SendResult,
    Subscription,
    SubscriptionStatus,
    generate_secret,
)
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.store.database import Database
from sdfleet.store.notification_rows import delivery_of, event_of, subscription_of
from sdfleet.store.outbox import emit, wake_delivery_after_commit
from sdfleet.store.tables import (
    NotificationAttemptRow,
    NotificationDeliveryRow,
    NotificationEventRow,
    NotificationSubscriptionRow,
)

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to this worker, with what sending it needs."""

    delivery: Delivery
    subscription: Subscription
    event: NotificationEvent
    lease_token: int


@dataclass(frozen=True)
class AttemptOutcome:
    """What recording an attempt did."""

    status: DeliveryStatus
    next_attempt_at: datetime | None
    #: the subscription was disabled by this failure
    disabled: bool = False
    #: the lease had been lost (another worker took the delivery): nothing was recorded
    stale: bool = False


def _new_delivery(s: Session, *, event: NotificationEvent, sub_row: NotificationSubscriptionRow,
                  target: str | None = None) -> str:
    delivery_id = new_id()
    s.add(NotificationDeliveryRow(
        id=delivery_id, event_id=event.id, subscription_id=sub_row.id, user_id=sub_row.user_id,
        channel=sub_row.channel, event_type=event.type.value, target=target, status=DeliveryStatus.PENDING.value,
        attempts=0, next_attempt_at=event.occurred_at, lease_token=0, created_at=event.occurred_at,
        updated_at=event.occurred_at,
    ))
    wake_delivery_after_commit(s)  # due at once: a confirmation or test mail must not wait for the safety poll
    return delivery_id


def add_addressed_delivery(s: Session, event: NotificationEvent, sub: Subscription) -> str:
    """Record an event meant for one subscription (confirmation, test) with its delivery, already fanned out."""
    s.add(NotificationEventRow(
        id=event.id, type=event.type.value, user_id=event.user_id, endpoint=event.endpoint,
        duration_seconds=event.duration_seconds, data=event.data, subscription_id=sub.id, fanned_out=True,
        created_at=event.occurred_at))
    s.flush()
    return _new_delivery(s, event=event, sub_row=s.get(NotificationSubscriptionRow, sub.id))


class SqlDeliveries:
    """Fan-out, leases and the delivery log on SQLite or PostgreSQL."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # 1. Fan-out
    def fan_out(self, *, now: datetime, limit: int = 200) -> int:
        """Turn up to `limit` new outbox events into deliveries, each event exactly once; returns how many."""
        with self._db.session(write_lock=True) as s:
            rows = s.scalars(select(NotificationEventRow).where(NotificationEventRow.fanned_out.is_(False))
                             .order_by(NotificationEventRow.id).limit(limit)
                             .with_for_update(skip_locked=True)).all()
            if not rows:
                return 0
            active = s.scalars(select(NotificationSubscriptionRow).where(
                NotificationSubscriptionRow.status == SubscriptionStatus.ACTIVE.value)).all()
            subs = [(row, subscription_of(row)) for row in active]
            for row in rows:
                event = event_of(row)
                for sub_row, sub in subs:
                    if sub.wants(event) or _is_disabled_notice_for(event, sub):
                        _new_delivery(s, event=event, sub_row=sub_row)
                url = event.data.get("webhook")
                if event.type.is_job and isinstance(url, str) and url and event.user_id:
                    _new_delivery(s, event=event, sub_row=self._job_subscription_row(s, event.user_id, now),
                                  target=url)
                row.fanned_out = True
            return len(rows)

    @staticmethod
    def _job_subscription_row(s: Session, user_id: str, now: datetime) -> NotificationSubscriptionRow:
        row = s.scalar(select(NotificationSubscriptionRow).where(NotificationSubscriptionRow.job_key == user_id))
        if row is None:
            row = NotificationSubscriptionRow(
                id=new_id(), user_id=user_id, channel=Channel.WEBHOOK.value, scope=Scope.JOB.value, target="",
                secret=generate_secret(), events=[], min_duration_seconds=0.0,
                description="one-off webhooks of job submissions", status=SubscriptionStatus.ACTIVE.value,
                consecutive_failures=0, job_key=user_id, created_at=now, updated_at=now)
            s.add(row)
            s.flush()
        return row

    # 2. Leases
    def claim(self, *, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries of subscriptions that are not disabled."""
        if limit <= 0:
            return []
        D, S = NotificationDeliveryRow, NotificationSubscriptionRow
        with self._db.session(write_lock=True) as s:
            ids = s.scalars(
                select(D.id).join(S, S.id == D.subscription_id)
                .where(D.status == DeliveryStatus.PENDING.value, D.next_attempt_at <= now,
                       or_(D.lease_expires_at.is_(None), D.lease_expires_at < now),
                       S.status != SubscriptionStatus.DISABLED.value)
                .order_by(D.next_attempt_at, D.id).limit(limit).with_for_update(skip_locked=True, of=D)
            ).all()
            if not ids:
                return []
            s.execute(update(D).where(D.id.in_(ids)).values(
                lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds),
                lease_token=D.lease_token + 1))
            claimed = []
            for row in s.scalars(select(D).where(D.id.in_(ids)).execution_options(populate_existing=True)):
                claimed.append(ClaimedDelivery(
                    delivery=delivery_of(row), subscription=subscription_of(s.get(S, row.subscription_id)),
                    event=event_of(s.get(NotificationEventRow, row.event_id)), lease_token=row.lease_token))
            return claimed

    def next_due(self, *, now: datetime) -> datetime | None:
        """When the earliest delivery `claim` could take is due (the worker sleeps until then): a leased one when
        its lease runs out, none of a disabled subscription — else the worker would spin on what it cannot claim."""
        D, S = NotificationDeliveryRow, NotificationSubscriptionRow
        due = case((D.lease_expires_at > now, D.lease_expires_at), else_=D.next_attempt_at)
        with self._db.session(write_lock=False) as s:
            return s.scalar(select(func.min(due)).join(S, S.id == D.subscription_id).where(
                D.status == DeliveryStatus.PENDING.value, S.status != SubscriptionStatus.DISABLED.value))

    def pending_events(self) -> int:
        """Outbox events not yet fanned out."""
        with self._db.session(write_lock=False) as s:
            return s.scalar(select(func.count()).select_from(NotificationEventRow)
                            .where(NotificationEventRow.fanned_out.is_(False))) or 0

    # 3. Results
    def record(self, claimed: ClaimedDelivery, result: SendResult, *, now: datetime, policy: RetryPolicy,
               disable_after: int) -> AttemptOutcome:
        """Record one attempt under the lease: success, a retry at the next backoff step, or failure for good.

        A delivery failing for good counts against its subscription; `disable_after` such failures in a row
        disable it and queue a notice to the owner's confirmed addresses."""
        with self._db.session(write_lock=True) as s:
            row = s.get(NotificationDeliveryRow, claimed.delivery.id, populate_existing=True,
                        with_for_update=not self._db.is_sqlite)
            if row is None or row.lease_token != claimed.lease_token or row.status != DeliveryStatus.PENDING.value:
                return AttemptOutcome(status=DeliveryStatus(row.status) if row else DeliveryStatus.FAILED,
                                      next_attempt_at=None, stale=True)
            row.attempts += 1
            s.add(NotificationAttemptRow(delivery_id=row.id, number=row.attempts, at=now, ok=result.ok,
                                         status_code=result.status_code, latency_ms=result.latency_ms,
                                         error=(result.error or None) and result.error[:MAX_ERROR_CHARS]))
            row.last_status_code, row.last_latency_ms = result.status_code, result.latency_ms
            row.last_error = (result.error or None) and result.error[:MAX_ERROR_CHARS]
            row.lease_owner, row.lease_expires_at, row.updated_at = None, None, now
            # Locked: deliveries to one subscription finish concurrently, and each may change its failure count.
            sub_row = s.get(NotificationSubscriptionRow, row.subscription_id, populate_existing=True,
                            with_for_update=not self._db.is_sqlite)
            if result.ok:
                row.status, row.delivered_at, row.next_attempt_at = DeliveryStatus.SUCCEEDED.value, now, None
                sub_row.consecutive_failures = 0
                return AttemptOutcome(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None)
            delay = policy.delay(row.attempts)
            if delay is not None:
                row.next_attempt_at = now + timedelta(seconds=delay)
                return AttemptOutcome(status=DeliveryStatus.PENDING, next_attempt_at=row.next_attempt_at)
            row.status, row.next_attempt_at = DeliveryStatus.FAILED.value, None
            return AttemptOutcome(status=DeliveryStatus.FAILED, next_attempt_at=None,
                                  disabled=self._count_failure(s, sub_row, row, now=now, disable_after=disable_after))

    @staticmethod
    def _count_failure(s: Session, sub_row: NotificationSubscriptionRow, row: NotificationDeliveryRow, *,
                       now: datetime, disable_after: int) -> bool:
        if row.event_type in (EventType.EMAIL_CONFIRMATION.value, EventType.SUBSCRIPTION_DISABLED.value):
            return False
        sub_row.consecutive_failures += 1
        if (sub_row.scope == Scope.JOB.value or sub_row.status != SubscriptionStatus.ACTIVE.value
                or sub_row.consecutive_failures < disable_after):
            return False
        sub_row.status = SubscriptionStatus.DISABLED.value
        sub_row.disabled_reason = (f"disabled after {sub_row.consecutive_failures} deliveries in a row failed "
                                   f"(last: {row.last_error or row.last_status_code})")[:MAX_ERROR_CHARS]
        sub_row.updated_at = now
        emit(s, EventType.SUBSCRIPTION_DISABLED, now=now, user_id=sub_row.user_id,
             data={"subscription_id": sub_row.id, "channel": sub_row.channel, "target": sub_row.target,
                   "reason": sub_row.disabled_reason})
        return True

    # 4. The log
    def list_for_subscription(self, subscription_id: str, page: PageRequest) -> Page[Delivery]:
        """A subscription's deliveries, newest first."""
        D = NotificationDeliveryRow
        with self._db.session(write_lock=False) as s:
            stmt = select(D).where(D.subscription_id == subscription_id).order_by(D.id.desc()).limit(page.limit + 1)
            if page.after:
                stmt = stmt.where(D.id < str(page.after[0]))
            rows = [delivery_of(r) for r in s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda d: [d.id])

    def get(self, delivery_id: str) -> Delivery | None:
        """One delivery with every attempt."""
        with self._db.session(write_lock=False) as s:
            row = s.get(NotificationDeliveryRow, delivery_id)
            if row is None:
                return None
            attempts = s.scalars(select(NotificationAttemptRow).where(NotificationAttemptRow.delivery_id == row.id)
                                 .order_by(NotificationAttemptRow.number)).all()
            return delivery_of(row, list(attempts))

    def redeliver(self, delivery_id: str, *, now: datetime) -> str:
        """Send a delivery's event again to the same target (same `webhook-id`), as a new delivery."""
        with self._db.session(write_lock=True) as s:
            old = s.get(NotificationDeliveryRow, delivery_id)
            new = new_id()
            s.add(NotificationDeliveryRow(
                id=new, event_id=old.event_id, subscription_id=old.subscription_id, user_id=old.user_id,
                channel=old.channel, event_type=old.event_type, target=old.target,
                status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now, lease_token=0,
                created_at=now, updated_at=now))
            wake_delivery_after_commit(s)
            return new

    def send_addressed(self, event: NotificationEvent, sub: Subscription) -> str:
        """Record an event for one subscription with its delivery (test events); returns the delivery id."""
        with self._db.session(write_lock=True) as s:
            return add_addressed_delivery(s, event, sub)


def _is_disabled_notice_for(event: NotificationEvent, sub: Subscription) -> bool:
    """A "subscription disabled" notice goes to every confirmed address of the owner."""
    return (event.type is EventType.SUBSCRIPTION_DISABLED and sub.channel is Channel.EMAIL
            and sub.user_id == event.user_id)
