"""Notification subscriptions: e-mail addresses and webhook endpoints of users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sdfleet.domain.ids import new_id
from sdfleet.domain.notifications import (
    Channel,
    NotificationEvent,
    Scope,
    Subscription,
    SubscriptionStatus,
    generate_secret,
)
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.store.database import Database
from sdfleet.store.notification_deliveries import add_addressed_delivery
from sdfleet.store.notification_rows import subscription_of
from sdfleet.store.tables import NotificationSubscriptionRow


def _row(sub: Subscription) -> NotificationSubscriptionRow:
    return NotificationSubscriptionRow(
        id=sub.id, user_id=sub.user_id, channel=sub.channel.value, scope=sub.scope.value, endpoint=sub.endpoint,
        target=sub.target, secret=sub.secret, events=sorted(e.value for e in sub.events),
        min_duration_seconds=sub.min_duration_seconds, description=sub.description, status=sub.status.value,
        confirmed_at=sub.confirmed_at, disabled_reason=sub.disabled_reason,
        consecutive_failures=sub.consecutive_failures,
        job_key=sub.user_id if sub.scope is Scope.JOB else None, created_at=sub.created_at,
        updated_at=sub.updated_at,
    )


class SqlSubscriptions:
    """The `notification_subscriptions` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, sub: Subscription, *, confirmation: NotificationEvent | None = None) -> Subscription:
        """Store a subscription; an e-mail's confirmation mail is queued in the same transaction."""
        with self._db.session(write_lock=True) as s:
            s.add(_row(sub))
            s.flush()
            if confirmation is not None:
                add_addressed_delivery(s, confirmation, sub)
        return sub

    def get(self, subscription_id: str) -> Subscription | None:
        with self._db.session(write_lock=False) as s:
            row = s.get(NotificationSubscriptionRow, subscription_id)
            return subscription_of(row) if row is not None else None

    def find_target(self, user_id: str, channel: Channel, target: str) -> Subscription | None:
        """The user's subscription with this address or URL, if any."""
        with self._db.session(write_lock=False) as s:
            row = s.scalar(select(NotificationSubscriptionRow).where(
                NotificationSubscriptionRow.user_id == user_id, NotificationSubscriptionRow.channel == channel.value,
                NotificationSubscriptionRow.target == target))
            return subscription_of(row) if row is not None else None

    def list_for_user(self, user_id: str, page: PageRequest) -> Page[Subscription]:
        """The user's subscriptions (not the internal job-webhook one), oldest first."""
        with self._db.session(write_lock=False) as s:
            stmt = (select(NotificationSubscriptionRow)
                    .where(NotificationSubscriptionRow.user_id == user_id,
                           NotificationSubscriptionRow.scope != Scope.JOB.value)
                    .order_by(NotificationSubscriptionRow.id).limit(page.limit + 1))
            if page.after:
                stmt = stmt.where(NotificationSubscriptionRow.id > str(page.after[0]))
            rows = [subscription_of(r) for r in s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda sub: [sub.id])

    def update(self, subscription_id: str, *, now: datetime, **values: Any) -> Subscription | None:
        """Change fields (events, min_duration_seconds, description, status, target, secret …)."""
        with self._db.session(write_lock=True) as s:
            row = s.get(NotificationSubscriptionRow, subscription_id, populate_existing=True,
                        with_for_update=not self._db.is_sqlite)
            if row is None:
                return None
            for name, value in values.items():
                if name == "events":
                    value = sorted(e.value for e in value)
                elif name == "status":
                    value = value.value
                setattr(row, name, value)
            row.updated_at = now
            return subscription_of(row)

    def queue_mail(self, sub: Subscription, event: NotificationEvent) -> str:
        """Queue a system mail (a new confirmation link) to one subscription; returns the delivery id."""
        with self._db.session(write_lock=True) as s:
            return add_addressed_delivery(s, event, sub)

    def delete(self, subscription_id: str) -> None:
        with self._db.session(write_lock=True) as s:
            row = s.get(NotificationSubscriptionRow, subscription_id)
            if row is not None:
                s.delete(row)

    def job_subscription(self, user_id: str, *, now: datetime) -> Subscription:
        """The user's internal subscription that signs one-off job webhooks, created on first use."""
        with self._db.session(write_lock=False) as s:
            row = s.scalar(select(NotificationSubscriptionRow).where(NotificationSubscriptionRow.job_key == user_id))
            if row is not None:
                return subscription_of(row)
        sub = Subscription(id=new_id(), user_id=user_id, channel=Channel.WEBHOOK, scope=Scope.JOB, target="",
                           status=SubscriptionStatus.ACTIVE, created_at=now, updated_at=now, secret=generate_secret(),
                           description="one-off webhooks of job submissions")
        try:
            return self.add(sub)
        except IntegrityError:  # created meanwhile by another request or server
            with self._db.session(write_lock=False) as s:
                return subscription_of(s.scalar(select(NotificationSubscriptionRow)
                                                .where(NotificationSubscriptionRow.job_key == user_id)))
