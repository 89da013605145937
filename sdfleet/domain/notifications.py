"""Notifications: the event vocabulary, subscriptions (e-mail, webhooks), deliveries and their retry schedule."""

from __future__ import annotations

import base64
import binascii
import enum
import random
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sdfleet.domain.errors import InvalidInput


class EventType(enum.StrEnum):
    """Everything sdfleet notifies about. The value is the `type` of a webhook payload."""

    INFERENCE_SUCCEEDED = "inference.succeeded"  #: an inference job finished with its images
    INFERENCE_FAILED = "inference.failed"  #: an inference job failed
    INFERENCE_CANCELLED = "inference.cancelled"  #: an inference job was cancelled
    TRAINING_SUCCEEDED = "training.succeeded"  #: a training job finished
    TRAINING_FAILED = "training.failed"  #: a training job failed
    MODEL_IMPORT_FINISHED = "model_import.finished"  #: a URL import registered its model
    MODEL_IMPORT_FAILED = "model_import.failed"  #: a URL import failed
    UPLOAD_REGISTERED = "upload.registered"  #: a resumable upload was registered as a model
    ENDPOINT_REPLICA_LOST = "endpoint.replica_lost"  #: a replica's worker process died (it is restarted)
    ENDPOINT_FAILED_TO_START = "endpoint.failed_to_start"  #: an endpoint could not start a replica
    WORKFLOW_VERSION_PUBLISHED = "workflow.version_published"  #: a ComfyUI workflow got a new version
    #: sent on request to one subscription ("send test event")
    TEST = "notification.test"
    #: system mail: confirm an e-mail address (sent only to that address)
    EMAIL_CONFIRMATION = "notification.email_confirmation"
    #: system mail: one of the owner's subscriptions was disabled after repeated failures
    SUBSCRIPTION_DISABLED = "notification.subscription_disabled"

    @property
    def selectable(self) -> bool:
        """Whether users choose this event in a subscription (system events are not chosen)."""
        return self not in SYSTEM_EVENTS

    @property
    def is_job(self) -> bool:
        """Events of a job (these carry a duration, filtered by "only for jobs longer than N s")."""
        return self.value.startswith(("inference.", "training."))


SYSTEM_EVENTS = frozenset({EventType.TEST, EventType.EMAIL_CONFIRMATION, EventType.SUBSCRIPTION_DISABLED})
SELECTABLE_EVENTS = tuple(t for t in EventType if t.selectable)

#: how a finished job of each kind is announced: (kind, status) → event
JOB_EVENTS: dict[tuple[str, str], EventType] = {
    ("inference", "succeeded"): EventType.INFERENCE_SUCCEEDED,
    ("inference", "failed"): EventType.INFERENCE_FAILED,
    ("inference", "cancelled"): EventType.INFERENCE_CANCELLED,
    ("train", "succeeded"): EventType.TRAINING_SUCCEEDED,
    ("train", "failed"): EventType.TRAINING_FAILED,
    ("training", "succeeded"): EventType.TRAINING_SUCCEEDED,
    ("training", "failed"): EventType.TRAINING_FAILED,
}


class Channel(enum.StrEnum):
    """How a subscription is reached."""

    EMAIL = "email"  #: a confirmed e-mail address, over SMTP
    WEBHOOK = "webhook"  #: an HTTPS/HTTP URL, signed per Standard Webhooks


class Scope(enum.StrEnum):
    """Whose events a subscription receives."""

    OWN = "own"  #: the owner's own jobs, imports, uploads and workflows
    ALL = "all"  #: every user's events and every endpoint's (`user:all`)
    ENDPOINT = "endpoint"  #: the events of one endpoint: its jobs and replicas (`endpoint:all`)
    JOB = "job"  #: internal: the owner's one-off `webhook` URLs given with job submissions


class SubscriptionStatus(enum.StrEnum):
    """Whether a subscription receives events."""

    PENDING = "pending"  #: an e-mail address awaiting its confirmation link
    ACTIVE = "active"  #: receives its events
    DISABLED = "disabled"  #: disabled by its owner, by unsubscribing or after repeated failures


class DeliveryStatus(enum.StrEnum):
    """Where one event's delivery to one subscription stands."""

    PENDING = "pending"  #: waiting for its next attempt (`next_attempt_at`)
    SUCCEEDED = "succeeded"  #: the receiver accepted it (2xx, or the SMTP server took the mail)
    FAILED = "failed"  #: every attempt of the retry schedule failed (a manual redeliver starts again)


@dataclass(frozen=True)
class NotificationEvent:
    """One event in the outbox. `id` is the `webhook-id` receivers de-duplicate on."""

    id: str
    type: EventType
    occurred_at: datetime
    #: the user the event belongs to (a job's owner); None for fleet events (endpoints)
    user_id: str | None = None
    #: the endpoint involved, for endpoint-scoped subscriptions
    endpoint: str | None = None
    #: for job events: seconds from submission to the end, for "only for jobs longer than N s"
    duration_seconds: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: system events addressed to one subscription (confirmation, test)
    subscription_id: str | None = None


@dataclass(frozen=True)
class Subscription:
    """Where a user wants to hear about events, and which ones."""

    id: str
    user_id: str
    channel: Channel
    scope: Scope
    #: the e-mail address, or the webhook URL ("" for the internal job-webhook subscription)
    target: str
    status: SubscriptionStatus
    created_at: datetime
    updated_at: datetime
    #: empty: every selectable event
    events: frozenset[EventType] = frozenset()
    endpoint: str | None = None
    #: job events of shorter jobs are not sent (0: all)
    min_duration_seconds: float = 0.0
    description: str = ""
    #: the webhook signing secret (`whsec_…`); None for e-mail
    secret: str | None = None
    confirmed_at: datetime | None = None
    disabled_reason: str | None = None
    #: deliveries that failed for good since the last success
    consecutive_failures: int = 0

    def wants(self, event: NotificationEvent) -> bool:
        """Whether this subscription receives `event` (status aside)."""
        if event.subscription_id is not None or not event.type.selectable:
            return False
        if self.events and event.type not in self.events:
            return False
        if self.scope is Scope.OWN and event.user_id != self.user_id:
            return False
        if self.scope is Scope.ENDPOINT and event.endpoint != self.endpoint:
            return False
        if self.scope is Scope.JOB:
            return False
        if event.type.is_job and event.duration_seconds is not None:
            return event.duration_seconds >= self.min_duration_seconds
        return True


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try of a delivery, as shown in the delivery log."""

    number: int
    at: datetime
    ok: bool
    latency_ms: int
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one subscription."""

    id: str
    event_id: str
    event_type: EventType
    subscription_id: str
    user_id: str
    channel: Channel
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: overrides the subscription's target (one-off job webhooks)
    target: str | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    last_latency_ms: int | None = None
    delivered_at: datetime | None = None
    history: tuple[DeliveryAttempt, ...] = ()


@dataclass(frozen=True)
class SendResult:
    """What one attempt gave: accepted or not, the receiver's status code, how long it took."""

    ok: bool
    latency_ms: int
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits base × factor^(n-1), capped, ± jitter.

    The defaults retry over about a day (5 s, 20 s, 80 s, 5 min, 21 min, 85 min, 5.7 h, then 6 h;
    11 attempts in all ≈ 25.6 h). Tests pass short delays: nothing in the code sleeps on its own."""

    base_seconds: float = 5.0
    factor: float = 4.0
    max_delay_seconds: float = 6 * 3600.0
    max_attempts: int = 11
    #: each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.base_seconds > 0 or self.factor < 1 or self.max_delay_seconds < self.base_seconds:
            raise ValueError("retry delays must be positive, factor ≥ 1 and max_delay ≥ base")
        if self.max_attempts < 1 or not 0 <= self.jitter < 1:
            raise ValueError("max_attempts must be ≥ 1 and jitter in [0, 1)")

    def delay(self, attempts: int, *, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after `attempts` failed attempts, or None when the schedule is exhausted."""
        if attempts >= self.max_attempts:
            return None
        plain = min(self.base_seconds * self.factor ** (attempts - 1), self.max_delay_seconds)
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return plain * spread

    def total_seconds(self) -> float:
        """The span of the whole schedule without jitter."""
        return sum(min(self.base_seconds * self.factor ** (n - 1), self.max_delay_seconds)
                   for n in range(1, self.max_attempts))


# Validation at the edge ------------------------------------------------------------------------

MAX_ADDRESS_LENGTH = 254
#: a pragmatic address check (RFC 5322's dot-atom local part, a dotted domain); no display names, no quoting
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
SECRET_PREFIX = "whsec_"
#: Standard Webhooks: secrets are 24 to 64 random bytes
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
MAX_MIN_DURATION = 7 * 24 * 3600


def check_address(value: Any, *, field: str = "address") -> str:
    """A plain `local@domain` address (lower-cased domain), or InvalidInput naming what is wrong."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("address must be an e-mail address like name@example.com", field=field)
    if len(value) > MAX_ADDRESS_LENGTH:
        raise InvalidInput(f"address is {len(value)} characters long, at most {MAX_ADDRESS_LENGTH}", field=field)
    if not _ADDRESS.fullmatch(value) or len(value.partition("@")[0]) > 64:
        raise InvalidInput(f"{value!r} is not an e-mail address like name@example.com", field=field)
    local, _, domain = value.partition("@")
    return f"{local}@{domain.lower()}"


def generate_secret() -> str:
    """A new webhook signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(value: Any, *, field: str = "secret") -> str:
    """A Standard Webhooks secret (`whsec_` + base64 of 24-64 bytes), or InvalidInput saying what is wrong."""
    expected = f"{SECRET_PREFIX} followed by the base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes"
    if not isinstance(value, str) or not value.startswith(SECRET_PREFIX):
        raise InvalidInput(f"secret must be {expected}", field=field)
    body = value[len(SECRET_PREFIX):]
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"secret is not valid base64; it must be {expected}", field=field) from None
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise InvalidInput(f"secret is {len(raw)} bytes long; it must be {expected}", field=field)
    return value


def parse_events(values: Any, *, field: str = "events") -> frozenset[EventType]:
    """Event names a user may choose (empty: all), naming the first unknown one."""
    if values is None:
        return frozenset()
    if not isinstance(values, (list, tuple)):
        raise InvalidInput("events must be a list of event types", field=field)
    known = {t.value for t in SELECTABLE_EVENTS}
    chosen = set()
    for value in values:
        if value not in known:
            raise InvalidInput(f"unknown event type {value!r}; expected one of {', '.join(sorted(known))}",
                               field=field)
        chosen.add(EventType(value))
    return frozenset(chosen)


def check_min_duration(value: Any, *, field: str = "min_duration_seconds") -> float:
    """Seconds from 0 to a week."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_MIN_DURATION:
        raise InvalidInput(f"min_duration_seconds must be a number from 0 to {MAX_MIN_DURATION}, got {value!r}",
                           field=field)
    return float(value)
