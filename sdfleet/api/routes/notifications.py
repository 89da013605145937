"""/api/v1/notifications: e-mail addresses and webhooks, confirmations, test events, the delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.base import ListPage
from sdfleet.api.schemas.notifications import (
    ConfirmationResult,
    DeliveryPublic,
    EventTypesPublic,
    JobWebhookPublic,
    SubscriptionCreate,
    SubscriptionPublic,
    SubscriptionUpdate,
    SubscriptionWithSecret,
    TokenBody,
)
from sdfleet.services.notifications import SubscriptionChange, SubscriptionRequest

router = APIRouter(prefix="/notifications", tags=["notifications"])
Id = Annotated[str, Path(max_length=64)]


@router.get("/event-types", response_model=EventTypesPublic)
def list_event_types(principal: CurrentPrincipal, services: ServicesDep) -> EventTypesPublic:
    """The events a subscription may choose."""
    return EventTypesPublic(items=[t.value for t in services.notifications.event_types()])


@router.get("/subscriptions", response_model=ListPage[SubscriptionPublic])
def list_subscriptions(principal: CurrentPrincipal, services: ServicesDep,
                       page: PageDep) -> ListPage[SubscriptionPublic]:
    """Your e-mail addresses and webhooks."""
    result = services.notifications.list(principal, page)
    return ListPage(items=[SubscriptionPublic.of(s) for s in result.items], next_cursor=result.next_cursor)


@router.post("/subscriptions", response_model=SubscriptionWithSecret, status_code=201)
def create_subscription(body: SubscriptionCreate, principal: CurrentPrincipal,
                        services: ServicesDep) -> SubscriptionWithSecret:
    """Add an address (a confirmation link is mailed; nothing else is sent before it is followed) or a webhook
    (its signing secret is in the answer)."""
    sub = services.notifications.create(principal, SubscriptionRequest(**body.model_dump()))
    return SubscriptionWithSecret.of(sub)


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionPublic)
def get_subscription(subscription_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> SubscriptionPublic:
    """One of your subscriptions."""
    return SubscriptionPublic.of(services.notifications.get(principal, subscription_id))


@router.patch("/subscriptions/{subscription_id}", response_model=SubscriptionPublic)
def update_subscription(subscription_id: Id, body: SubscriptionUpdate, principal: CurrentPrincipal,
                        services: ServicesDep) -> SubscriptionPublic:
    """Change events, the duration threshold, the description or a webhook's URL; enable or disable."""
    change = SubscriptionChange(**body.model_dump())
    return SubscriptionPublic.of(services.notifications.update(principal, subscription_id, change))


@router.delete("/subscriptions/{subscription_id}", status_code=204)
def delete_subscription(subscription_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Remove a subscription and its delivery log."""
    services.notifications.delete(principal, subscription_id)
    return Response(status_code=204)


@router.post("/subscriptions/{subscription_id}/rotate-secret", response_model=SubscriptionWithSecret)
def rotate_secret(subscription_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> SubscriptionWithSecret:
    """A new signing secret for a webhook; the old one stops signing at once."""
    return SubscriptionWithSecret.of(services.notifications.rotate_secret(principal, subscription_id))


@router.post("/subscriptions/{subscription_id}/resend-confirmation", response_model=SubscriptionPublic,
             status_code=202)
def resend_confirmation(subscription_id: Id, principal: CurrentPrincipal,
                        services: ServicesDep) -> SubscriptionPublic:
    """Mail a new confirmation link to an address awaiting confirmation."""
    return SubscriptionPublic.of(services.notifications.resend_confirmation(principal, subscription_id))


@router.post("/subscriptions/{subscription_id}/test", response_model=DeliveryPublic, status_code=202)
def send_test_event(subscription_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> DeliveryPublic:
    """Queue a `notification.test` event to this subscription; follow it in the delivery log."""
    return DeliveryPublic.of(services.notifications.send_test(principal, subscription_id))


@router.get("/subscriptions/{subscription_id}/deliveries", response_model=ListPage[DeliveryPublic])
def list_deliveries(subscription_id: Id, principal: CurrentPrincipal, services: ServicesDep,
                    page: PageDep) -> ListPage[DeliveryPublic]:
    """The delivery log: status, response code, latency and next attempt of each delivery, newest first."""
    result = services.notifications.deliveries(principal, subscription_id, page)
    return ListPage(items=[DeliveryPublic.of(d) for d in result.items], next_cursor=result.next_cursor)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryPublic)
def get_delivery(delivery_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> DeliveryPublic:
    """One delivery with every attempt."""
    return DeliveryPublic.of(services.notifications.delivery(principal, delivery_id))


@router.post("/deliveries/{delivery_id}/redeliver", response_model=DeliveryPublic, status_code=202)
def redeliver(delivery_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> DeliveryPublic:
    """Send the event again as a new delivery, with the same `webhook-id`."""
    return DeliveryPublic.of(services.notifications.redeliver(principal, delivery_id))


@router.get("/job-webhook", response_model=JobWebhookPublic)
def get_job_webhook(principal: CurrentPrincipal, services: ServicesDep) -> JobWebhookPublic:
    """The secret that signs the one-off `webhook` URL of your job submissions."""
    return JobWebhookPublic(secret=services.notifications.job_webhook_secret(principal))


@router.post("/job-webhook/rotate-secret", response_model=JobWebhookPublic)
def rotate_job_webhook_secret(principal: CurrentPrincipal, services: ServicesDep) -> JobWebhookPublic:
    """A new secret for your one-off job webhooks."""
    return JobWebhookPublic(secret=services.notifications.job_webhook_secret(principal, rotate=True))


@router.get("/job-webhook/deliveries", response_model=ListPage[DeliveryPublic])
def list_job_webhook_deliveries(principal: CurrentPrincipal, services: ServicesDep,
                                page: PageDep) -> ListPage[DeliveryPublic]:
    """The delivery log of your one-off job webhooks."""
    result = services.notifications.job_deliveries(principal, page)
    return ListPage(items=[DeliveryPublic.of(d) for d in result.items], next_cursor=result.next_cursor)


@router.post("/confirm", response_model=ConfirmationResult)
def confirm_address(body: TokenBody, services: ServicesDep) -> ConfirmationResult:
    """Confirm an address with the token of its confirmation link (no login: the token is the proof)."""
    sub = services.notifications.confirm(body.token)
    return ConfirmationResult(id=sub.id, address=sub.target, status=sub.status.value)


@router.post("/unsubscribe", response_model=ConfirmationResult)
def unsubscribe(body: TokenBody, services: ServicesDep) -> ConfirmationResult:
    """Stop mail to an address with the token of the unsubscribe link in any of its mails."""
    sub = services.notifications.unsubscribe(body.token)
    if sub is None:
        return ConfirmationResult(id="", address="", status="deleted")
    return ConfirmationResult(id=sub.id, address=sub.target, status=sub.status.value)
