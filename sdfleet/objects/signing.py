"""Expiring, HMAC-signed download URLs served by the API for stores that cannot presign."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from urllib.parse import quote, urlencode

from sdfleet.objects.base import validate_key

#: Route of the API that serves signed downloads; the key follows it.
DOWNLOAD_ROUTE = "/api/v1/objects/"
MIN_SECRET_BYTES = 16
#: Longest validity accepted, like S3's presigned URLs (7 days).
MAX_EXPIRES_IN = 7 * 24 * 3600


class UrlSigner:
    """Builds and verifies `{public_base_url}/api/v1/objects/{key}?expires=…&signature=…` URLs."""

    def __init__(
        self, *, secret_key: bytes, public_base_url: str, clock: Callable[[], float] = time.time
    ) -> None:
        if not isinstance(secret_key, bytes):
            raise TypeError(f"secret_key must be bytes, got {type(secret_key).__name__}")
        if len(secret_key) < MIN_SECRET_BYTES:
            raise ValueError(f"secret_key must be at least {MIN_SECRET_BYTES} bytes, got {len(secret_key)}")
        if not public_base_url.startswith(("http://", "https://")):
            raise ValueError(f"public_base_url must start with http:// or https://, got {public_base_url!r}")
        # Derive a key of our own so the same secret used elsewhere (sessions, webhooks) never signs alike.
        self._key = hmac.new(secret_key, b"sdfleet.objects.download.v1", hashlib.sha256).digest()
        self._base_url = public_base_url.rstrip("/")
        self._clock = clock

    def sign(self, key: str, *, expires: int, filename: str | None = None) -> str:
        """Return the hex signature of a key, an expiry (Unix seconds) and an optional download name."""
        message = "\n".join([key, str(int(expires)), filename or ""]).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """Return a signed download URL valid for `expires_in` seconds."""
        if not 1 <= expires_in <= MAX_EXPIRES_IN:
            raise ValueError(f"expires_in must be between 1 and {MAX_EXPIRES_IN} seconds, got {expires_in}")
        expires = math.ceil(self._clock()) + expires_in
        query = {"expires": str(expires), "signature": self.sign(key, expires=expires, filename=filename)}
        if filename:
            query["filename"] = filename
        return f"{self._base_url}{DOWNLOAD_ROUTE}{quote(key, safe='/')}?{urlencode(query)}"

    def verify(self, key: str, *, expires: int, signature: str, filename: str | None = None) -> bool:
        """Tell whether the signature matches (constant-time) and has not expired."""
        if not isinstance(signature, str) or len(signature) != 64:
            return False
        expected = self.sign(key, expires=expires, filename=filename)
        if not hmac.compare_digest(expected, signature.lower()):
            return False
        return self._clock() <= int(expires)


def content_disposition(filename: str) -> str:
    """Return an `attachment` Content-Disposition header for `filename` (RFC 6266, UTF-8 safe)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class ServerSignedUrls:
    """Download URLs for stores without their own (local, memory): signed links to the API server.

    Subclasses set `self._signer`; parts always go through the API (no presigned part URLs)."""

    _signer: UrlSigner

    def presign_part_url(self, key: str, upload_id: str, part_number: int, *, expires_in: int) -> str | None:
        """Parts go through the API: no direct URL."""
        return None

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """Return a signed API download URL."""
        validate_key(key)
        return self._signer.url(key, expires_in=expires_in, filename=filename)

    def verify_download(self, key: str, *, expires: int, signature: str, filename: str | None = None) -> bool:
        """Check a signed download URL's parameters."""
        return self._signer.verify(key, expires=expires, signature=signature, filename=filename)
