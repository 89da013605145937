"""Send mail over SMTP: `smtp://` (STARTTLS when offered, or required) or `smtps://` (TLS from the start), AUTH.

`SDFLEET_SMTP_URL` examples: `smtp://mail.example:587?starttls=require`, `smtps://user:pass@mail.example`,
`smtp://127.0.0.1:1025?starttls=off` (a local relay). `ca_file=/path/ca.pem` trusts a private CA.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from sdfleet.domain.notifications import SendResult

STARTTLS_MODES = ("auto", "require", "off")


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    """Where and how to reach the SMTP server."""

    host: str
    port: int
    #: smtps://: TLS from the first byte
    implicit_tls: bool = False
    #: smtp:// only: "auto" upgrades when the server offers STARTTLS, "require" refuses to send otherwise
    starttls: str = "auto"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    timeout: float = 20.0

    @classmethod
    def parse(cls, url: str) -> SmtpConfig:
        """Parse `smtp[s]://[user[:password]@]host[:port][?starttls=auto|require|off&ca_file=…&timeout=…]`."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP URL must start with smtp:// or smtps://, got {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise ValueError("SMTP URL has no host")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "ca_file", "timeout"}
        if unknown:
            raise ValueError(f"unknown SMTP URL parameter(s): {', '.join(sorted(unknown))}")
        starttls = query.get("starttls", "auto")
        if starttls not in STARTTLS_MODES:
            raise ValueError(f"starttls must be one of {', '.join(STARTTLS_MODES)}, got {starttls!r}")
        try:
            port = parts.port or (465 if parts.scheme == "smtps" else 25)
            timeout = float(query.get("timeout", 20))
        except ValueError as exc:
            raise ValueError(f"bad SMTP URL: {exc}") from None
        return cls(host=parts.hostname, port=port, implicit_tls=parts.scheme == "smtps", starttls=starttls,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   ca_file=query.get("ca_file"), timeout=timeout)


class SmtpMailer:
    """One SMTP conversation per message (mail is rare; no connection to keep alive)."""

    def __init__(self, config: SmtpConfig, *, mail_from: str) -> None:
        self._config = config
        self.mail_from = mail_from

    def send(self, message: EmailMessage) -> SendResult:
        """Hand `message` to the server; the result carries the SMTP reply code."""
        started = time.monotonic()
        try:
            code = self._send(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return _failed(started, f"recipient refused: {code} {_text(reply)}", code)
        except smtplib.SMTPResponseException as exc:
            return _failed(started, f"{exc.smtp_code} {_text(exc.smtp_error)}", exc.smtp_code)
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            return _failed(started, f"{type(exc).__name__}: {exc}", None)
        return SendResult(ok=True, latency_ms=_ms(started), status_code=code)

    def _send(self, message: EmailMessage) -> int:
        c = self._config
        context = ssl.create_default_context(cafile=c.ca_file)
        if c.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=context)
        else:
            client = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        with client:
            client.ehlo()
            if not c.implicit_tls and c.starttls != "off":
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif c.starttls == "require":
                    raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS (starttls=require)")
            if c.username:
                client.login(c.username, c.password or "")
            client.send_message(message, from_addr=self.mail_from)
            code, _ = client.noop()
            return 250 if code == 250 else code


def _failed(started: float, error: str, code: int | None) -> SendResult:
    return SendResult(ok=False, latency_ms=_ms(started), status_code=code, error=error)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
