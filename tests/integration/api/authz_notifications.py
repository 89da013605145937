"""Authorization matrix entries of notifications (own subscriptions only; another user's is 404), the public
confirmation / unsubscribe routes (the signed token is the credential) and signed object downloads."""

from __future__ import annotations

from urllib.parse import urlsplit

from sdfleet.domain.ids import new_id
from sdfleet.domain.notifications import Channel, Scope, Subscription, SubscriptionStatus
from sdfleet.services.notification_links import LinkSigner
from sdfleet.store.notification_subscriptions import SqlSubscriptions
from sdfleet.store.types import utcnow
from tests.fixtures.runtime import Api
from tests.integration.api.authz_matrix import Actor, Case, Request

BASE = "/api/v1/notifications"
HOOK = {"channel": "webhook", "url": "https://hooks.example.com/sdfleet"}


def _user_id(api: Api, owner: Actor) -> str:
    return api.client.get("/api/v1/me", headers=owner.headers).json()["id"]


def _webhook(api: Api, owner: Actor) -> str:
    r = api.client.post(f"{BASE}/subscriptions", headers=owner.headers,
                        json={**HOOK, "url": f"https://hooks.example.com/{new_id()}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _pending_address(api: Api, owner: Actor) -> str:
    """An address awaiting confirmation (stored directly: the matrix's server has no SMTP)."""
    now = utcnow()
    sub = Subscription(id=new_id(), user_id=_user_id(api, owner), channel=Channel.EMAIL, scope=Scope.OWN,
                       target=f"{new_id()}@example.com", status=SubscriptionStatus.PENDING, created_at=now,
                       updated_at=now)
    return SqlSubscriptions(api.runtime.database).add(sub).id


def _delivery(api: Api, owner: Actor) -> str:
    r = api.client.post(f"{BASE}/subscriptions/{_webhook(api, owner)}/test", headers=owner.headers)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _signer(api: Api) -> LinkSigner:
    return LinkSigner(secret_key=api.runtime.secret_key)


def _signed_object(api: Api) -> str:
    key = f"outputs/{new_id()}/t1/0.png"
    api.runtime.objects.put(key, b"\x89PNG\r\n\x1a\n", content_type="image/png")
    url = api.runtime.objects.download_url(key, expires_in=60)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


CASES = {
    ("GET", f"{BASE}/event-types"): Case(None, lambda api, o: Request(f"{BASE}/event-types")),
    ("GET", f"{BASE}/subscriptions"): Case(None, lambda api, o: Request(f"{BASE}/subscriptions")),
    ("POST", f"{BASE}/subscriptions"): Case(None, lambda api, o: Request(
        f"{BASE}/subscriptions", {**HOOK, "url": f"https://hooks.example.com/{new_id()}"}, ok=frozenset({201}))),
    ("GET", f"{BASE}/subscriptions/{{subscription_id}}"): Case(None, lambda api, o: Request(
        f"{BASE}/subscriptions/{_webhook(api, o)}"), owned=True),
    ("PATCH", f"{BASE}/subscriptions/{{subscription_id}}"): Case(None, lambda api, o: Request(
        f"{BASE}/subscriptions/{_webhook(api, o)}", {"description": "renamed"}), owned=True),
    ("DELETE", f"{BASE}/subscriptions/{{subscription_id}}"): Case(None, lambda api, o: Request(
        f"{BASE}/subscriptions/{_webhook(api, o)}", ok=frozenset({204})), owned=True),
    ("POST", f"{BASE}/subscriptions/{{subscription_id}}/rotate-secret"): Case(None, lambda api, o: Request(
        f"{BASE}/subscriptions/{_webhook(api, o)}/rotate-secret"), owned=True),
    ("POST", f"{BASE}/subscriptions/{{subscription_id}}/resend-confirmation"): Case(None, lambda api, o: Request(
        f"{BASE}/subscriptions/{_pending_address(api, o)}/resend-confirmation", ok=frozenset({202})), owned=True),
    ("POST", f"{BASE}/subscriptions/{{subscription_id}}/test"): Case(None, lambda api, o: Request(
        f"{BASE}/subscriptions/{_webhook(api, o)}/test", ok=frozenset({202})), owned=True),
    ("GET", f"{BASE}/subscriptions/{{subscription_id}}/deliveries"): Case(None, lambda api, o: Request(
        f"{BASE}/subscriptions/{_webhook(api, o)}/deliveries"), owned=True),
    ("GET", f"{BASE}/deliveries/{{delivery_id}}"): Case(None, lambda api, o: Request(
        f"{BASE}/deliveries/{_delivery(api, o)}"), owned=True),
    ("POST", f"{BASE}/deliveries/{{delivery_id}}/redeliver"): Case(None, lambda api, o: Request(
        f"{BASE}/deliveries/{_delivery(api, o)}/redeliver", ok=frozenset({202})), owned=True),
    ("GET", f"{BASE}/job-webhook"): Case(None, lambda api, o: Request(f"{BASE}/job-webhook")),
    ("POST", f"{BASE}/job-webhook/rotate-secret"): Case(None, lambda api, o: Request(
        f"{BASE}/job-webhook/rotate-secret")),
    ("GET", f"{BASE}/job-webhook/deliveries"): Case(None, lambda api, o: Request(f"{BASE}/job-webhook/deliveries")),
    ("POST", f"{BASE}/confirm"): Case("public", lambda api, o: Request(
        f"{BASE}/confirm", {"token": _signer(api).confirmation_token(_pending_address(api, o))})),
    ("POST", f"{BASE}/unsubscribe"): Case("public", lambda api, o: Request(
        f"{BASE}/unsubscribe", {"token": _signer(api).unsubscribe_token(_pending_address(api, o))})),
    ("GET", "/api/v1/objects/{key}"): Case("public", lambda api, o: Request(_signed_object(api))),
}
