"""What a notification says: the webhook payload (JSON) and the e-mail (plain text + HTML)."""

from __future__ import annotations

import json
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from sdfleet.domain.notifications import EventType, NotificationEvent, Subscription
from sdfleet.services.notification_links import CONFIRM_TTL_SECONDS, Links

TITLES = {
    EventType.INFERENCE_SUCCEEDED: "Your image is ready",
    EventType.INFERENCE_FAILED: "Your inference job failed",
    EventType.INFERENCE_CANCELLED: "Your inference job was cancelled",
    EventType.TRAINING_SUCCEEDED: "Your training job finished",
    EventType.TRAINING_FAILED: "Your training job failed",
    EventType.MODEL_IMPORT_FINISHED: "Model import finished",
    EventType.MODEL_IMPORT_FAILED: "Model import failed",
    EventType.UPLOAD_REGISTERED: "Model upload registered",
    EventType.ENDPOINT_REPLICA_LOST: "An endpoint lost a replica",
    EventType.ENDPOINT_FAILED_TO_START: "An endpoint failed to start",
    EventType.WORKFLOW_VERSION_PUBLISHED: "A workflow version was published",
    EventType.TEST: "Test notification from sdfleet",
    EventType.EMAIL_CONFIRMATION: "Confirm your address for sdfleet notifications",
    EventType.SUBSCRIPTION_DISABLED: "A notification subscription was disabled",
}
#: event data that stays inside sdfleet (object keys, the one-off webhook URL)
INTERNAL_KEYS = frozenset({"webhook"})
_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "mail_templates"),
                         autoescape=select_autoescape(["html"]), trim_blocks=True, keep_trailing_newline=True)


def public_data(event: NotificationEvent, links: Links) -> dict[str, Any]:
    """The event's data as receivers see it: images as links, no internal fields."""
    data = {k: v for k, v in event.data.items() if k not in INTERNAL_KEYS}
    if event.type.is_job and "job_id" in data:
        data["duration_seconds"] = event.duration_seconds
        # A training has no images in the gallery: its link opens the Train page.
        data["gallery_url"] = links.training() if data.get("kind") == "train" else links.gallery(data["job_id"])
        data["outputs"] = [
            {"index": o["index"], "width": o.get("width"), "height": o.get("height"),
             "url": f"{links.inference(data['job_id'])}/outputs/{o['index']}", "download_url": links.image(o["key"])}
            for o in data.get("outputs") or ()
        ]
    return data


def webhook_body(event: NotificationEvent, links: Links) -> str:
    """The JSON body of a webhook: `{"type", "timestamp", "data"}` (the Standard Webhooks payload shape)."""
    payload = {"type": event.type.value, "timestamp": event.occurred_at.astimezone(UTC).isoformat(),
               "data": public_data(event, links)}
    return json.dumps(payload, separators=(",", ":"), default=str)


def subject(event: NotificationEvent) -> str:
    """The mail subject: the event's title, with the prompt of a job."""
    title = TITLES[event.type]
    prompt = (event.data.get("prompt") or "").strip() if event.type.is_job else ""
    if prompt:
        title += f": “{prompt[:60]}{'…' if len(prompt) > 60 else ''}”"
    return f"[sdfleet] {title}"


def email_message(event: NotificationEvent, subscription: Subscription, *, links: Links, mail_from: str,
                  username: str = "") -> EmailMessage:
    """The mail for one event to one confirmed (or, for the confirmation itself, pending) address."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = subscription.target
    message["Subject"] = subject(event)
    message["Date"] = format_datetime(event.occurred_at.astimezone(UTC))
    message["Message-ID"] = make_msgid(idstring=event.id, domain=mail_from.rpartition("@")[2].strip("> ") or None)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Sdfleet-Event"] = f"{event.type.value} {event.id}"
    if event.type is EventType.EMAIL_CONFIRMATION:
        context = {"address": subscription.target, "username": username, "confirm_url": links.confirm(subscription.id),
                   "ttl_hours": CONFIRM_TTL_SECONDS // 3600}
        _set_bodies(message, "confirmation", context)
        return message
    unsubscribe = links.unsubscribe(subscription.id)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    data = public_data(event, links)
    context = {"title": TITLES[event.type], "address": subscription.target, "unsubscribe_url": unsubscribe,
               "settings_url": links.settings(), "job": _job_context(event, data), "details": _details(data)}
    _set_bodies(message, "event", context)
    return message


def _job_context(event: NotificationEvent, data: dict[str, Any]) -> dict[str, Any] | None:
    if not event.type.is_job or "job_id" not in data:
        return None
    images = [{"index": o["index"], "width": o.get("width") or 64, "height": o.get("height") or 64,
               "url": o["download_url"]} for o in data["outputs"] if o.get("download_url")]
    return {"status": data.get("status"), "prompt": data.get("prompt"), "model": data.get("model"),
            "error": data.get("error"), "duration_seconds": event.duration_seconds, "images": images,
            "gallery_url": data["gallery_url"]}


def _details(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name.replace("_", " "), value if isinstance(value, str) else json.dumps(value))
            for name, value in data.items() if value not in (None, "", [], {})]


def _set_bodies(message: EmailMessage, template: str, context: dict[str, Any]) -> None:
    message.set_content(_TEMPLATES.get_template(f"{template}.txt").render(context))
    message.add_alternative(_TEMPLATES.get_template(f"{template}.html").render(context), subtype="html")
