"""Composition of notifications (part of the composition root): settings → mailer, webhook sender, worker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sdfleet.domain.notifications import RetryPolicy
from sdfleet.services.mailer import SmtpConfig, SmtpMailer
from sdfleet.services.notification_delivery import DeliveryWorker, Dispatcher, WorkerSettings
from sdfleet.services.notification_links import IMAGE_LINK_SECONDS, Links, LinkSigner
from sdfleet.services.notifications import NotificationService
from sdfleet.services.webhook_sender import WebhookPolicy, WebhookSender
from sdfleet.settings import Settings
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.notification_deliveries import SqlDeliveries
from sdfleet.store.notification_subscriptions import SqlSubscriptions
from sdfleet.store.outbox import watch_commits


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """The parsed `SDFLEET_SMTP_URL`, or None when mail is off; ValueError names what is wrong."""
    if settings.smtp_url is None:
        return None
    return SmtpConfig.parse(settings.smtp_url.get_secret_value())


def retry_policy(settings: Settings) -> RetryPolicy:
    """Exponential backoff (×4) with jitter from the settings."""
    base = settings.notify_retry_base_seconds
    return RetryPolicy(base_seconds=base, max_delay_seconds=max(base, settings.notify_retry_max_seconds),
                       max_attempts=settings.notify_max_attempts)


def build_notifications(settings: Settings, *, database: Database, objects, secret_key: bytes,
                        clock: Callable[[], datetime],
                        endpoint_names: Callable[[], list[str]]) -> tuple[NotificationService, DeliveryWorker]:
    """The user-facing service and the delivery worker (a background task of the app)."""
    config = smtp_config(settings)
    mailer = SmtpMailer(config, mail_from=settings.mail_from) if config is not None else None
    signer = LinkSigner(secret_key=secret_key)
    links = Links(public_url=settings.resolved_public_url(), signer=signer,
                  download_url=lambda key: objects.download_url(key, expires_in=IMAGE_LINK_SECONDS))
    allowed = frozenset(h.strip().lower() for h in settings.webhook_allowed_hosts)
    webhooks = WebhookSender(policy=WebhookPolicy(allowed_hosts=allowed, timeout=settings.webhook_timeout_seconds,
                                                  connect_timeout=min(5.0, settings.webhook_timeout_seconds)))

    def username_of(user_id: str) -> str:
        with database.session(write_lock=False) as s:
            user = AccountRepository(s).get_user(user_id)
        return user.username if user else ""

    deliveries = SqlDeliveries(database)
    worker = DeliveryWorker(
        deliveries=deliveries, clock=clock,
        send=Dispatcher(webhooks=webhooks, mailer=mailer, links=links, clock=clock, username_of=username_of),
        settings=WorkerSettings(policy=retry_policy(settings), disable_after=settings.notify_disable_after,
                                lease_seconds=max(60.0, settings.webhook_timeout_seconds * 4),
                                poll_seconds=settings.notify_poll_seconds),
    )
    watch_commits(database, worker.wake)
    service = NotificationService(subscriptions=SqlSubscriptions(database), deliveries=deliveries, signer=signer,
                                  clock=clock, mail_enabled=mailer is not None, allowed_hosts=allowed,
                                  endpoint_names=endpoint_names)
    return service, worker
