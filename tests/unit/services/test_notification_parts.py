"""Signatures against the Standard Webhooks definition, signed links, mail composition, SMTP URLs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sdfleet.domain.errors import InvalidInput
from sdfleet.domain.notifications import (
    Channel,
    EventType,
    NotificationEvent,
    Scope,
    Subscription,
    SubscriptionStatus,
    generate_secret,
)
from sdfleet.services.mailer import SmtpConfig
from sdfleet.services.notification_links import Links, LinkSigner
from sdfleet.services.notification_messages import email_message, webhook_body
from sdfleet.services.webhook_sender import sign
from tests.fixtures.notifications import manual_signature

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def links(clock=None) -> Links:
    return Links(public_url="https://fleet.example", signer=LinkSigner(secret_key=b"k" * 32, clock=clock or Clock(1e9)),
                 download_url=lambda key: f"https://fleet.example/api/v1/objects/{key}?signature=s")


def test_signature_matches_the_specification_computed_by_hand():
    secret = generate_secret()
    body = json.dumps({"type": "inference.succeeded", "data": {"prompt": "ünïcode"}}, ensure_ascii=False)
    header = sign(secret, message_id="msg_1", timestamp=T0, body=body)
    assert header == manual_signature(secret, message_id="msg_1", timestamp=str(int(T0.timestamp())),
                                      body=body.encode())


def test_links_are_purpose_bound_signed_and_expire():
    clock = Clock(1_000_000)
    signer = LinkSigner(secret_key=b"k" * 32, clock=clock)
    token = signer.confirmation_token("sub1", ttl=60)
    assert signer.verify_confirmation(token) == "sub1"
    with pytest.raises(InvalidInput):
        signer.verify_unsubscribe(token)
    with pytest.raises(InvalidInput):
        LinkSigner(secret_key=b"x" * 32, clock=clock).verify_confirmation(token)  # another server's secret
    payload, signature = token.split(".")
    with pytest.raises(InvalidInput):
        signer.verify_confirmation(payload + "A." + signature)
    clock.now += 61
    with pytest.raises(InvalidInput) as err:
        signer.verify_confirmation(token)
    assert err.value.details["reason"] == "expired"
    assert signer.verify_unsubscribe(signer.unsubscribe_token("sub1")) == "sub1"  # never expires


def _job_event(**data) -> NotificationEvent:
    return NotificationEvent(id="evt1", type=EventType.INFERENCE_SUCCEEDED, occurred_at=T0, user_id="u",
                             duration_seconds=12.5, data={
                                 "job_id": "job1", "status": "succeeded", "prompt": "<b>a cat</b>", "model": "m",
                                 "outputs": [{"index": 0, "key": "outputs/job1/t1/0.png", "width": 64, "height": 64}],
                                 "webhook": "https://private.example/hook", **data})


def test_webhook_body_keeps_internal_fields_out():
    payload = json.loads(webhook_body(_job_event(), links()))
    assert payload["type"] == "inference.succeeded" and payload["timestamp"] == T0.isoformat()
    data = payload["data"]
    assert "webhook" not in data and data["duration_seconds"] == 12.5
    assert data["outputs"] == [{"index": 0, "width": 64, "height": 64,
                                "url": "https://fleet.example/api/v1/inferences/job1/outputs/0",
                                "download_url": "https://fleet.example/api/v1/objects/outputs/job1/t1/0.png?signature=s"}]


def test_mail_escapes_the_prompt_in_html_and_carries_unsubscribe_headers():
    address = Subscription(id="sub1", user_id="u", channel=Channel.EMAIL, scope=Scope.OWN, target="a@example.com",
                           status=SubscriptionStatus.ACTIVE, created_at=T0, updated_at=T0)
    mail = email_message(_job_event(), address, links=links(), mail_from="sdfleet@fleet.example")
    html = mail.get_body(preferencelist=("html",)).get_content()
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "&lt;b&gt;a cat&lt;/b&gt;" in html and "<b>a cat</b>" not in html
    assert "Prompt: <b>a cat</b>" in text
    assert mail["List-Unsubscribe"].startswith("<https://fleet.example/notifications/unsubscribe?token=")
    assert mail["Message-ID"].endswith("@fleet.example>")


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.example", dict(host="mail.example", port=25, implicit_tls=False, starttls="auto")),
    ("smtps://u%40x:p%3Ass@mail.example", dict(port=465, implicit_tls=True, username="u@x", password="p:ss")),
    ("smtp://mail.example:587?starttls=require&timeout=5", dict(port=587, starttls="require", timeout=5.0)),
])
def test_smtp_urls(url, expected):
    config = SmtpConfig.parse(url)
    assert {k: getattr(config, k) for k in expected} == expected


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtp://h?starttls=maybe", "smtp://h?tls=1",
                                 "smtp://h:notaport"])
def test_bad_smtp_urls(url):
    with pytest.raises(ValueError):
        SmtpConfig.parse(url)
