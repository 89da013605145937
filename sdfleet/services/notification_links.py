"""Links in notifications: signed, expiring e-mail confirmations, signed unsubscribe links, gallery and images."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from sdfleet.domain.errors import InvalidInput

CONFIRM_TTL_SECONDS = 3 * 24 * 3600
#: signed image links in mails and payloads stay valid this long (the object stores' maximum)
IMAGE_LINK_SECONDS = 7 * 24 * 3600


class LinkSigner:
    """HMAC tokens `<purpose-bound payload>.<signature>`; the key is derived from the server secret."""

    def __init__(self, *, secret_key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret_key, b"sdfleet.notifications.links.v1", hashlib.sha256).digest()
        self._clock = clock

    def confirmation_token(self, subscription_id: str, *, ttl: int = CONFIRM_TTL_SECONDS) -> str:
        """A token that confirms one address until it expires."""
        return self._token("confirm", subscription_id, int(self._clock()) + ttl)

    def unsubscribe_token(self, subscription_id: str) -> str:
        """A token that unsubscribes one address (never expires: old mails keep working)."""
        return self._token("unsubscribe", subscription_id, 0)

    def verify_confirmation(self, token: str) -> str:
        """The subscription id of a valid, unexpired confirmation token; InvalidInput otherwise."""
        subscription_id, expires = self._verify("confirm", token)
        if expires < self._clock():
            raise InvalidInput("this confirmation link has expired; ask for a new one in your notification settings",
                               field="token", details={"reason": "expired"})
        return subscription_id

    def verify_unsubscribe(self, token: str) -> str:
        """The subscription id of a valid unsubscribe token; InvalidInput otherwise."""
        return self._verify("unsubscribe", token)[0]

    def _token(self, purpose: str, subscription_id: str, expires: int) -> str:
        payload = _b64(f"{purpose}:{subscription_id}:{expires}".encode())
        return f"{payload}.{self._sign(payload)}"

    def _verify(self, purpose: str, token: object) -> tuple[str, int]:
        invalid = InvalidInput("this link is not valid (it may be cut short or changed)", field="token",
                               details={"reason": "invalid"})
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 512:
            raise invalid
        payload, signature = token.split(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            raise invalid
        try:
            kind, subscription_id, expires = base64.urlsafe_b64decode(payload + "==").decode().split(":")
            expires_at = int(expires)
        except ValueError:
            raise invalid from None
        if kind != purpose:
            raise invalid
        return subscription_id, expires_at

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class Links:
    """Absolute URLs users reach from a mail or a payload."""

    public_url: str
    signer: LinkSigner
    #: signed download URL of an object key (the object store's own, or the API's signed route)
    download_url: Callable[[str], str]

    def confirm(self, subscription_id: str) -> str:
        return f"{self.public_url}/notifications/confirm?token={quote(self.signer.confirmation_token(subscription_id))}"

    def unsubscribe(self, subscription_id: str) -> str:
        return f"{self.public_url}/notifications/unsubscribe?token={quote(self.signer.unsubscribe_token(subscription_id))}"

    def settings(self) -> str:
        return f"{self.public_url}/settings#notifications"

    def gallery(self, job_id: str | None = None) -> str:
        return f"{self.public_url}/gallery" + (f"?job={quote(job_id)}" if job_id else "")

    def training(self) -> str:
        """The Train page (a training's samples, grid and LoRA)."""
        return f"{self.public_url}/train"

    def inference(self, job_id: str) -> str:
        return f"{self.public_url}/api/v1/inferences/{quote(job_id)}"

    def image(self, key: str) -> str | None:
        """A signed link to an output image, or None when the store cannot make one."""
        try:
            return self.download_url(key)
        except Exception:  # a deleted job's image, a store outage: the mail goes without the thumbnail
            return None
