"""The notification vocabulary: routing rules, the retry schedule, validation at the edge."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from sdfleet.domain.errors import InvalidInput
from sdfleet.domain.notifications import (
    SELECTABLE_EVENTS,
    Channel,
    EventType,
    NotificationEvent,
    RetryPolicy,
    Scope,
    Subscription,
    SubscriptionStatus,
    check_address,
    check_secret,
    generate_secret,
    parse_events,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sub(**kw) -> Subscription:
    base = dict(id="s", user_id="alice", channel=Channel.WEBHOOK, scope=Scope.OWN, target="https://x.test",
                status=SubscriptionStatus.ACTIVE, created_at=T0, updated_at=T0)
    return Subscription(**{**base, **kw})


def event(type_=EventType.INFERENCE_SUCCEEDED, **kw) -> NotificationEvent:
    return NotificationEvent(**{"id": "e", "type": type_, "occurred_at": T0, "user_id": "alice",
                                "endpoint": "default", "duration_seconds": 30.0, **kw})


def test_the_vocabulary_of_the_issue_is_selectable_and_system_events_are_not():
    names = {t.value for t in SELECTABLE_EVENTS}
    assert names == {"inference.succeeded", "inference.failed", "inference.cancelled", "training.succeeded",
                     "training.failed", "model_import.finished", "model_import.failed", "upload.registered",
                     "endpoint.replica_lost", "endpoint.failed_to_start", "workflow.version_published"}
    with pytest.raises(InvalidInput):
        parse_events(["notification.test"])


@pytest.mark.parametrize(("subscription", "evt", "wanted"), [
    (sub(), event(), True),
    (sub(), event(user_id="bob"), False),  # own scope: only the owner's events
    (sub(scope=Scope.ALL, user_id="admin"), event(user_id="bob"), True),
    (sub(scope=Scope.ENDPOINT, endpoint="default", user_id="admin"), event(user_id="bob"), True),
    (sub(scope=Scope.ENDPOINT, endpoint="xl", user_id="admin"), event(user_id="bob"), False),
    (sub(events=frozenset({EventType.INFERENCE_FAILED})), event(), False),
    (sub(min_duration_seconds=60), event(), False),  # a 30 s job is shorter than asked
    (sub(min_duration_seconds=60), event(EventType.MODEL_IMPORT_FINISHED, duration_seconds=None), True),
    (sub(), event(subscription_id="other"), False),  # addressed to one subscription only
    (sub(scope=Scope.JOB), event(), False),  # one-off job webhooks are routed by the job's URL
])
def test_routing(subscription, evt, wanted):
    assert subscription.wants(evt) is wanted


def test_backoff_is_exponential_with_jitter_and_spans_about_a_day():
    policy = RetryPolicy()
    assert 22 * 3600 < policy.total_seconds() < 30 * 3600
    plain = [RetryPolicy(jitter=0).delay(n) for n in range(1, 11)]
    assert plain[:4] == [5, 20, 80, 320] and plain[-1] == 6 * 3600
    assert policy.delay(11) is None  # the 11th failed attempt was the last
    spread = {round(policy.delay(3, rng=random.Random(seed))) for seed in range(20)}
    assert len(spread) > 5 and all(64 <= d <= 96 for d in spread)


@pytest.mark.parametrize("address", ["alice@example.com", "a.b+tag@mail.example.co.uk", "x@EXAMPLE.com"])
def test_addresses_accepted(address):
    assert check_address(address).endswith(address.split("@")[1].lower())


@pytest.mark.parametrize("address", ["", "plain", "a@b", "a@@b.com", "a b@c.com", "a@b.com\nBcc: x@y.com",
                                     '"quoted"@x.com', "Alice <a@b.com>", "a@-b.com", 12, None])
def test_addresses_refused(address):
    with pytest.raises(InvalidInput) as err:
        check_address(address)
    assert err.value.field == "address"


def test_secrets_follow_standard_webhooks():
    secret = generate_secret()
    assert check_secret(secret) == secret
    for bad in ["whsec_" + "QUFB" * 5, "abc", "whsec_***", None]:  # 15 bytes is short
        with pytest.raises(InvalidInput) as err:
            check_secret(bad)
        assert err.value.field == "secret"
