"""POST one signed webhook: Standard Webhooks headers, the SSRF guard of model imports, bounded time and memory.

The URL is resolved once and every address must be public (unless its host is on the admin allow-list);
the connection goes to the checked address with the original Host header and TLS server name. Redirects
are not followed. The answer's body is read up to a small cap and dropped: a receiver that answers with
100 MB costs 64 KiB; one that never answers costs `timeout` seconds.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from standardwebhooks.webhooks import Webhook

from sdfleet.domain.notifications import SendResult
from sdfleet.services.url_fetch import FetchError, FetchPolicy, Resolver, checked_address, system_resolver
from sdfleet.services.url_guard import UrlRefused, address_refusal, check_name, parse_url

USER_AGENT = "sdfleet-webhooks/1"
#: how much of an answer is shown in the delivery log
SHOWN_BODY_CHARS = 200


@dataclass(frozen=True, kw_only=True)
class WebhookPolicy:
    """Which private hosts may be reached, and how long and how much one attempt may take."""

    allowed_hosts: frozenset[str] = frozenset()
    connect_timeout: float = 5.0
    #: the whole attempt: connect, send, wait for the answer, read its head
    timeout: float = 15.0
    max_response_bytes: int = 64 * 1024

    def fetch_policy(self) -> FetchPolicy:
        """The model-import guard's policy with these limits (one guard for every outgoing URL)."""
        return FetchPolicy(allowed_hosts=self.allowed_hosts, max_bytes=self.max_response_bytes,
                           connect_timeout=self.connect_timeout, read_timeout=self.timeout, max_redirects=0,
                           total_timeout=self.timeout)


def check_webhook_url(url: str, *, allowed_hosts: frozenset[str]) -> str:
    """The checks that need no DNS (scheme, syntax, IP literals, local names); raises UrlRefused.

    The addresses a host name resolves to are checked again at every attempt."""
    target = parse_url(url)
    if target.matches(frozenset(h.strip().lower() for h in allowed_hosts)):
        return target.url
    if target.literal is not None:
        reason = address_refusal(target.literal)
        if reason is not None:
            raise UrlRefused(f"address {target.literal} is {reason}")
    else:
        check_name(target.host)
    return target.url


def sign(secret: str, *, message_id: str, timestamp: datetime, body: str) -> str:
    """The `webhook-signature` header: `v1,` + base64(HMAC-SHA256(secret, "id.timestamp.body"))."""
    return Webhook(secret).sign(msg_id=message_id, timestamp=timestamp, data=body)


class WebhookSender:
    """Sends signed webhook requests through the SSRF guard."""

    def __init__(self, *, policy: WebhookPolicy, resolver: Resolver | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._fetch_policy = policy.fetch_policy()
        self._resolve = resolver or system_resolver(policy.connect_timeout)
        self._clock = clock
        # One TLS context for every attempt: building one per client costs tens of milliseconds.
        self._tls = ssl.create_default_context()

    def send(self, *, url: str, secret: str, message_id: str, timestamp: datetime, body: str) -> SendResult:
        """POST `body` signed for `message_id` (the event id); a 2xx answer is a success."""
        started = self._clock()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": sign(secret, message_id=message_id, timestamp=timestamp, body=body),
        }
        try:
            status, head = self._post(url, headers=headers, body=body.encode(), started=started)
        except FetchError as exc:
            return SendResult(ok=False, latency_ms=self._elapsed_ms(started), error=str(exc))
        latency = self._elapsed_ms(started)
        if 200 <= status < 300:
            return SendResult(ok=True, latency_ms=latency, status_code=status)
        reason = "redirects are not followed" if 300 <= status < 400 else f"answered {status}"
        shown = head.decode("utf-8", "replace").strip()[:SHOWN_BODY_CHARS]
        return SendResult(ok=False, latency_ms=latency, status_code=status,
                          error=f"{reason}: {shown}" if shown else reason)

    def _post(self, url: str, *, headers: dict[str, str], body: bytes, started: float) -> tuple[int, bytes]:
        target = parse_url(url)
        address = checked_address(target, policy=self._fetch_policy, resolve=self._resolve)
        pinned = httpx.URL(scheme=target.scheme, host=str(address), port=target.port, raw_path=target.target.encode())
        extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
        remaining = max(0.1, self._policy.timeout - (self._clock() - started))
        timeout = httpx.Timeout(connect=min(self._policy.connect_timeout, remaining), read=remaining, write=remaining,
                                pool=remaining)
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout, verify=self._tls) as client:
            request = client.build_request("POST", pinned, headers={**headers, "Host": target.host_header},
                                           content=body, extensions=extensions)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise FetchError(f"no answer within {self._policy.timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"cannot reach {target.url}: {exc}") from None
            try:
                return response.status_code, self._read_head(response, started=started)
            finally:
                response.close()

    def _read_head(self, response: httpx.Response, *, started: float) -> bytes:
        """Up to `max_response_bytes` of the answer, within the attempt's time; the rest is never read."""
        head = bytearray()
        try:
            for chunk in response.iter_raw():
                head += chunk
                if len(head) >= self._policy.max_response_bytes or self._clock() - started > self._policy.timeout:
                    break
        except httpx.HTTPError:
            pass  # the status line counts; a body cut short does not change the outcome
        return bytes(head[: self._policy.max_response_bytes])

    def _elapsed_ms(self, started: float) -> int:
        return int((self._clock() - started) * 1000)
