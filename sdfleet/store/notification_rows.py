"""Row ↔ record mappers of the notification tables."""

from __future__ import annotations

from sdfleet.domain.notifications import (
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EventType,
    NotificationEvent,
    Scope,
    Subscription,
    SubscriptionStatus,
)
from sdfleet.store.tables import (
    NotificationAttemptRow,
    NotificationDeliveryRow,
    NotificationEventRow,
    NotificationSubscriptionRow,
)


def subscription_of(row: NotificationSubscriptionRow) -> Subscription:
    """The domain record of a row."""
    return Subscription(
        id=row.id, user_id=row.user_id, channel=Channel(row.channel), scope=Scope(row.scope), target=row.target,
        status=SubscriptionStatus(row.status), created_at=row.created_at, updated_at=row.updated_at,
        events=frozenset(EventType(e) for e in row.events or ()), endpoint=row.endpoint,
        min_duration_seconds=row.min_duration_seconds, description=row.description, secret=row.secret,
        confirmed_at=row.confirmed_at, disabled_reason=row.disabled_reason,
        consecutive_failures=row.consecutive_failures,
    )


def event_of(row: NotificationEventRow) -> NotificationEvent:
    """The domain record of an outbox row."""
    return NotificationEvent(id=row.id, type=EventType(row.type), occurred_at=row.created_at, user_id=row.user_id,
                             endpoint=row.endpoint, duration_seconds=row.duration_seconds, data=row.data or {},
                             subscription_id=row.subscription_id)


def delivery_of(row: NotificationDeliveryRow, attempts: list[NotificationAttemptRow] = ()) -> Delivery:
    """The domain record of a delivery row (with its attempts, when given)."""
    return Delivery(
        id=row.id, event_id=row.event_id, event_type=EventType(row.event_type), subscription_id=row.subscription_id,
        user_id=row.user_id, channel=Channel(row.channel), status=DeliveryStatus(row.status), attempts=row.attempts,
        next_attempt_at=row.next_attempt_at, created_at=row.created_at, updated_at=row.updated_at, target=row.target,
        last_status_code=row.last_status_code, last_error=row.last_error, last_latency_ms=row.last_latency_ms,
        delivered_at=row.delivered_at,
        history=tuple(DeliveryAttempt(number=a.number, at=a.at, ok=a.ok, latency_ms=a.latency_ms,
                                      status_code=a.status_code, error=a.error) for a in attempts),
    )
