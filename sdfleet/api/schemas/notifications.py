"""Schemas of notification subscriptions (e-mail, webhooks) and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.domain.notifications import Channel, Delivery, Subscription

Text = StrictStr


class SubscriptionCreate(Strict):
    channel: Literal["email", "webhook"]
    address: Text | None = Field(default=None, max_length=4096, description="E-mail: the address to confirm.")
    url: Text | None = Field(default=None, max_length=4096, description="Webhook: http(s) URL receiving POSTs.")
    secret: Text | None = Field(default=None, max_length=4096,
                                description="Webhook: `whsec_` + base64 of 24-64 bytes; generated when omitted.")
    events: list[Text] | None = Field(default=None, max_length=64, description="Event types; omitted or []: all.")
    min_duration_seconds: StrictFloat | StrictInt = Field(
        default=0, description="Job events of jobs shorter than this (submission to end) are not sent.")
    scope: Literal["own", "all", "endpoint"] = Field(
        default="own", description="own: your events; all: everyone's (`user:all`); endpoint: one endpoint's "
                                   "(`endpoint:all`).")
    endpoint: Text | None = Field(default=None, max_length=64, description="With scope `endpoint`.")
    description: Text = Field(default="", max_length=4096)


class SubscriptionUpdate(Strict):
    events: list[Text] | None = Field(default=None, max_length=64)
    min_duration_seconds: StrictFloat | StrictInt | None = None
    description: Text | None = Field(default=None, max_length=4096)
    url: Text | None = Field(default=None, max_length=4096, description="Webhooks only.")
    enabled: StrictBool | None = Field(default=None, description="false disables; true re-enables (resets failures).")


class TokenBody(Strict):
    token: Text = Field(max_length=1024, description="The token of a confirmation or unsubscribe link.")


class SubscriptionPublic(BaseModel):
    id: str
    channel: str
    scope: str
    endpoint: str | None
    address: str | None
    url: str | None
    status: str
    events: list[str]
    min_duration_seconds: float
    description: str
    #: the first characters of a webhook's secret, to tell secrets apart
    secret_hint: str | None
    confirmed_at: datetime | None
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, sub: Subscription) -> SubscriptionPublic:
        email = sub.channel is Channel.EMAIL
        return cls(id=sub.id, channel=sub.channel.value, scope=sub.scope.value, endpoint=sub.endpoint,
                   address=sub.target if email else None, url=None if email else sub.target, status=sub.status.value,
                   events=sorted(e.value for e in sub.events), min_duration_seconds=sub.min_duration_seconds,
                   description=sub.description, secret_hint=sub.secret[:12] + "…" if sub.secret else None,
                   confirmed_at=sub.confirmed_at, disabled_reason=sub.disabled_reason,
                   consecutive_failures=sub.consecutive_failures, created_at=sub.created_at,
                   updated_at=sub.updated_at)


class SubscriptionWithSecret(SubscriptionPublic):
    #: a webhook's signing secret, shown when it is created or rotated
    secret: str | None = None

    @classmethod
    def of(cls, sub: Subscription) -> SubscriptionWithSecret:
        return cls(**SubscriptionPublic.of(sub).model_dump(), secret=sub.secret)


class AttemptPublic(BaseModel):
    number: int
    at: datetime
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryPublic(BaseModel):
    id: str
    event_id: str
    event_type: str
    subscription_id: str
    channel: str
    target: str | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    delivered_at: datetime | None
    created_at: datetime
    history: list[AttemptPublic] = Field(default_factory=list, description="Every attempt (single delivery only).")

    @classmethod
    def of(cls, d: Delivery) -> DeliveryPublic:
        return cls(id=d.id, event_id=d.event_id, event_type=d.event_type.value, subscription_id=d.subscription_id,
                   channel=d.channel.value, target=d.target, status=d.status.value, attempts=d.attempts,
                   next_attempt_at=d.next_attempt_at, last_status_code=d.last_status_code, last_error=d.last_error,
                   last_latency_ms=d.last_latency_ms, delivered_at=d.delivered_at, created_at=d.created_at,
                   history=[AttemptPublic(number=a.number, at=a.at, ok=a.ok, status_code=a.status_code,
                                          latency_ms=a.latency_ms, error=a.error) for a in d.history])


class JobWebhookPublic(BaseModel):
    secret: str = Field(description="Verifies the signature of the one-off `webhook` of your job submissions.")


class EventTypesPublic(BaseModel):
    items: list[str]


class ConfirmationResult(BaseModel):
    id: str
    address: str
    status: str
