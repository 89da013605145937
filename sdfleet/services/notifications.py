"""Notification settings of users: e-mail addresses (confirmed by a signed link), webhooks, the delivery log.

Everyone manages their own subscriptions; another user's is always 404. Subscriptions to every user's
events need `user:all`; to one endpoint's events, `endpoint:all`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Conflict, InvalidInput, NotFound
from sdfleet.domain.ids import is_valid_id, new_id
from sdfleet.domain.notifications import (
    SELECTABLE_EVENTS,
    Channel,
    Delivery,
    EventType,
    NotificationEvent,
    Scope,
    Subscription,
    SubscriptionStatus,
    check_address,
    check_min_duration,
    check_secret,
    generate_secret,
    parse_events,
)
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.services.authorization import authorize
from sdfleet.services.notification_links import LinkSigner
from sdfleet.services.url_guard import UrlRefused
from sdfleet.services.webhook_sender import check_webhook_url
from sdfleet.store.notification_deliveries import SqlDeliveries
from sdfleet.store.notification_subscriptions import SqlSubscriptions

MAX_DESCRIPTION = 200
MAX_URL = 2048


@dataclass(frozen=True, kw_only=True)
class SubscriptionRequest:
    """A new subscription as given at the edge (validated here)."""

    channel: str
    address: Any = None
    url: Any = None
    secret: Any = None
    events: Any = None
    min_duration_seconds: Any = 0
    scope: str = "own"
    endpoint: Any = None
    description: Any = ""


@dataclass(frozen=True, kw_only=True)
class SubscriptionChange:
    """Fields to change; None leaves a field as it is."""

    events: Any = None
    min_duration_seconds: Any = None
    description: Any = None
    url: Any = None
    enabled: bool | None = None


class NotificationService:
    """Subscriptions, confirmations, test events, the delivery log and redelivery."""

    def __init__(self, *, subscriptions: SqlSubscriptions, deliveries: SqlDeliveries, signer: LinkSigner,
                 clock: Callable[[], datetime], mail_enabled: bool, allowed_hosts: frozenset[str],
                 endpoint_names: Callable[[], list[str]] = list) -> None:
        self._subs = subscriptions
        self._deliveries = deliveries
        self._signer = signer
        self._clock = clock
        self.mail_enabled = mail_enabled
        self._allowed_hosts = allowed_hosts
        self._endpoint_names = endpoint_names

    @staticmethod
    def event_types() -> list[EventType]:
        """The events a subscription may choose."""
        return list(SELECTABLE_EVENTS)

    # 1. Subscriptions
    def list(self, principal: Principal, page: PageRequest) -> Page[Subscription]:
        """The caller's e-mail addresses and webhooks."""
        return self._subs.list_for_user(principal.user_id, page)

    def get(self, principal: Principal, subscription_id: str) -> Subscription:
        """One of the caller's subscriptions."""
        sub = self._subs.get(subscription_id) if is_valid_id(subscription_id) else None
        if sub is None or sub.user_id != principal.user_id or sub.scope is Scope.JOB:
            raise NotFound(f"subscription {subscription_id!r} not found")
        return sub

    def create(self, principal: Principal, request: SubscriptionRequest) -> Subscription:
        """Add an address (a confirmation mail is queued, nothing else is sent until it is confirmed) or a webhook."""
        scope, endpoint = self._scope(principal, request.scope, request.endpoint)
        events = parse_events(request.events)
        min_duration = check_min_duration(request.min_duration_seconds)
        description = _description(request.description)
        now = self._clock()
        common = dict(id=new_id(), user_id=principal.user_id, scope=scope, endpoint=endpoint, events=events,
                      min_duration_seconds=min_duration, description=description, created_at=now, updated_at=now)
        if request.channel == Channel.EMAIL.value:
            if not self.mail_enabled:
                raise Conflict("e-mail is not configured on this server (SDFLEET_SMTP_URL); use a webhook",
                               details={"field": "channel"})
            if request.url is not None or request.secret is not None:
                raise InvalidInput("url and secret belong to webhooks; an e-mail subscription has an address",
                                   field="url" if request.url is not None else "secret")
            address = check_address(request.address)
            self._refuse_duplicate(principal, Channel.EMAIL, address, field="address")
            sub = Subscription(channel=Channel.EMAIL, target=address, status=SubscriptionStatus.PENDING, **common)
            return self._subs.add(sub, confirmation=self._confirmation(sub, now))
        if request.channel == Channel.WEBHOOK.value:
            if request.address is not None:
                raise InvalidInput("address belongs to e-mail subscriptions; a webhook has a url", field="address")
            url = self.check_url(request.url)
            self._refuse_duplicate(principal, Channel.WEBHOOK, url, field="url")
            secret = generate_secret() if request.secret is None else check_secret(request.secret)
            sub = Subscription(channel=Channel.WEBHOOK, target=url, status=SubscriptionStatus.ACTIVE, secret=secret,
                               confirmed_at=now, **common)
            return self._subs.add(sub)
        raise InvalidInput(f"channel must be email or webhook, got {request.channel!r}", field="channel")

    def update(self, principal: Principal, subscription_id: str, change: SubscriptionChange) -> Subscription:
        """Change events, duration threshold, description, URL; enable or disable."""
        sub = self.get(principal, subscription_id)
        values: dict[str, Any] = {}
        if change.events is not None:
            values["events"] = parse_events(change.events)
        if change.min_duration_seconds is not None:
            values["min_duration_seconds"] = check_min_duration(change.min_duration_seconds)
        if change.description is not None:
            values["description"] = _description(change.description)
        if change.url is not None:
            if sub.channel is not Channel.WEBHOOK:
                raise InvalidInput("only a webhook has a url; add a new address instead", field="url")
            values["target"] = self.check_url(change.url)
        if change.enabled is True and sub.status is SubscriptionStatus.DISABLED:
            if sub.confirmed_at is None:
                raise Conflict("this address was never confirmed; follow the link in its confirmation mail",
                               details={"field": "enabled"})
            values.update(status=SubscriptionStatus.ACTIVE, disabled_reason=None, consecutive_failures=0)
        elif change.enabled is True and sub.status is SubscriptionStatus.PENDING:
            raise Conflict("this address is not confirmed yet; follow the link in its confirmation mail",
                           details={"field": "enabled"})
        elif change.enabled is False and sub.status is not SubscriptionStatus.DISABLED:
            values.update(status=SubscriptionStatus.DISABLED, disabled_reason="disabled by its owner")
        return self._subs.update(sub.id, now=self._clock(), **values) if values else sub

    def delete(self, principal: Principal, subscription_id: str) -> None:
        """Remove a subscription and its delivery log."""
        self._subs.delete(self.get(principal, subscription_id).id)

    def rotate_secret(self, principal: Principal, subscription_id: str) -> Subscription:
        """A new signing secret for a webhook (the old one stops at once)."""
        sub = self.get(principal, subscription_id)
        if sub.channel is not Channel.WEBHOOK:
            raise InvalidInput("only webhooks have a signing secret", field="subscription_id")
        return self._subs.update(sub.id, now=self._clock(), secret=generate_secret())

    def job_webhook_secret(self, principal: Principal, *, rotate: bool = False) -> str:
        """The secret that signs the caller's one-off job webhooks (`webhook` on a submission)."""
        sub = self._subs.job_subscription(principal.user_id, now=self._clock())
        if rotate:
            sub = self._subs.update(sub.id, now=self._clock(), secret=generate_secret())
        return sub.secret or ""

    # 2. Confirmation and unsubscribing (the token is the credential: no login needed)
    def resend_confirmation(self, principal: Principal, subscription_id: str) -> Subscription:
        """Queue a new confirmation mail for a pending address."""
        sub = self.get(principal, subscription_id)
        if sub.status is not SubscriptionStatus.PENDING:
            raise Conflict(f"this address is {sub.status.value}, not awaiting confirmation")
        self._subs.queue_mail(sub, self._confirmation(sub, self._clock()))
        return sub

    def confirm(self, token: Any) -> Subscription:
        """Confirm an address from the signed link of its confirmation mail."""
        sub = self._subs.get(self._signer.verify_confirmation(token))
        if sub is None:
            raise NotFound("this address was removed; add it again in your notification settings")
        if sub.status is SubscriptionStatus.PENDING:
            now = self._clock()
            sub = self._subs.update(sub.id, now=now, status=SubscriptionStatus.ACTIVE, confirmed_at=now)
        return sub

    def unsubscribe(self, token: Any) -> Subscription | None:
        """Stop mail to an address from the link in any of its mails (idempotent)."""
        sub = self._subs.get(self._signer.verify_unsubscribe(token))
        if sub is None or sub.status is SubscriptionStatus.DISABLED:
            return sub
        return self._subs.update(sub.id, now=self._clock(), status=SubscriptionStatus.DISABLED,
                                 disabled_reason="unsubscribed from a mail")

    # 3. Test events and the delivery log
    def send_test(self, principal: Principal, subscription_id: str) -> Delivery:
        """Queue a `notification.test` event to one active subscription; returns its delivery."""
        sub = self.get(principal, subscription_id)
        if sub.status is SubscriptionStatus.PENDING:
            raise Conflict("this address is not confirmed yet; nothing but its confirmation mail is sent to it",
                           details={"reason": "unconfirmed"})
        if sub.status is SubscriptionStatus.DISABLED:
            raise Conflict("this subscription is disabled; enable it first", details={"reason": "disabled"})
        now = self._clock()
        event = NotificationEvent(id=new_id(), type=EventType.TEST, occurred_at=now, user_id=principal.user_id,
                                  subscription_id=sub.id,
                                  data={"message": "This is a test notification from sdfleet.",
                                        "subscription_id": sub.id, "username": principal.user.username})
        return self._deliveries.get(self._deliveries.send_addressed(event, sub))

    def deliveries(self, principal: Principal, subscription_id: str, page: PageRequest) -> Page[Delivery]:
        """A subscription's delivery log, newest first."""
        return self._deliveries.list_for_subscription(self.get(principal, subscription_id).id, page)

    def job_deliveries(self, principal: Principal, page: PageRequest) -> Page[Delivery]:
        """The log of the caller's one-off job webhooks."""
        sub = self._subs.job_subscription(principal.user_id, now=self._clock())
        return self._deliveries.list_for_subscription(sub.id, page)

    def delivery(self, principal: Principal, delivery_id: str) -> Delivery:
        """One delivery of the caller's, with every attempt."""
        delivery = self._deliveries.get(delivery_id) if is_valid_id(delivery_id) else None
        if delivery is None or delivery.user_id != principal.user_id:
            raise NotFound(f"delivery {delivery_id!r} not found")
        return delivery

    def redeliver(self, principal: Principal, delivery_id: str) -> Delivery:
        """Send a delivery's event again (same `webhook-id`, so receivers can de-duplicate)."""
        delivery = self.delivery(principal, delivery_id)
        return self._deliveries.get(self._deliveries.redeliver(delivery.id, now=self._clock()))

    # 4. Checks shared with job submissions
    def check_url(self, url: Any, *, field: str = "url") -> str:
        """A webhook URL the SSRF guard accepts (public host, or an admin-allowed private one)."""
        if not isinstance(url, str) or not url:
            raise InvalidInput("url must be an http(s) URL", field=field)
        if len(url) > MAX_URL:
            raise InvalidInput(f"url is {len(url)} characters long, at most {MAX_URL}", field=field)
        try:
            return check_webhook_url(url, allowed_hosts=self._allowed_hosts)
        except UrlRefused as exc:
            raise InvalidInput(f"url refused: {exc.reason}", field=field, details={"reason": "url_refused"}) from None

    # Internals
    def _scope(self, principal: Principal, scope: Any, endpoint: Any) -> tuple[Scope, str | None]:
        if scope == Scope.OWN.value:
            if endpoint is not None:
                raise InvalidInput("endpoint goes with scope \"endpoint\"", field="endpoint")
            return Scope.OWN, None
        if scope == Scope.ALL.value:
            authorize(principal, Permission.USER_ALL)
            return Scope.ALL, None
        if scope == Scope.ENDPOINT.value:
            authorize(principal, Permission.ENDPOINT_ALL)
            if endpoint not in self._endpoint_names():
                raise InvalidInput(f"no endpoint named {endpoint!r}", field="endpoint")
            return Scope.ENDPOINT, endpoint
        raise InvalidInput(f"scope must be own, all or endpoint, got {scope!r}", field="scope")

    def _refuse_duplicate(self, principal: Principal, channel: Channel, target: str, *, field: str) -> None:
        existing = self._subs.find_target(principal.user_id, channel, target)
        if existing is not None:
            raise Conflict(f"you already have this {channel.value} subscription", details={"field": field,
                                                                                       "id": existing.id})

    @staticmethod
    def _confirmation(sub: Subscription, now: datetime) -> NotificationEvent:
        return NotificationEvent(id=new_id(), type=EventType.EMAIL_CONFIRMATION, occurred_at=now, user_id=sub.user_id,
                                 subscription_id=sub.id, data={"address": sub.target})


def _description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidInput(f"description must be text of at most {MAX_DESCRIPTION} characters", field="description")
    return value
