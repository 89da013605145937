"""ASGI middleware: request ids, access logs and a cap on request body size."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

from sdfleet.api.errors import error_body
from sdfleet.logging_setup import request_id_var

access_log = logging.getLogger("sdfleet.access")
log = logging.getLogger("sdfleet.api")
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdMiddleware:
    """Give every request an id (or keep a sane incoming `X-Request-ID`), echo it, log one access line."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.fullmatch(incoming) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 0}

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The last resort: an unexpected error is logged once with the request id and answered with the
            # envelope (and the id header) when nothing was sent yet, so the client keeps its connection.
            log.exception("unhandled error", extra={"request_id": request_id})
            if scope["type"] != "http" or status_holder["status"]:
                raise
            await _send_internal_error(send_with_id, request_id)
        finally:
            if scope["type"] == "http":
                access_log.info(
                    "%s %s %s %.1fms",
                    scope.get("method"),
                    scope.get("path"),
                    status_holder["status"],
                    (time.perf_counter() - started) * 1000,
                    extra={"request_id": request_id, "status": status_holder["status"]},
                )
            request_id_var.reset(token)


async def _send_internal_error(send, request_id: str) -> None:
    body = json.dumps(error_body("internal_error", "internal error; the request id identifies it in the logs",
                                 {"request_id": request_id})).encode()
    await send({"type": "http.response.start", "status": 500,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413 (by Content-Length, or while streaming), except exempt paths;
    paths matching an override get that override's limit instead."""

    def __init__(self, app, *, max_bytes: int, exempt: tuple[re.Pattern, ...] = (),
                 overrides: tuple[tuple[re.Pattern, int], ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt
        self.overrides = overrides

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or any(p.match(scope.get("path", "")) for p in self.exempt):
            await self.app(scope, receive, send)
            return
        max_bytes = next((limit for p, limit in self.overrides if p.match(scope.get("path", ""))), self.max_bytes)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > max_bytes
            except ValueError:
                too_big = True
            if too_big:
                await self._reject(send, max_bytes)
                return
        received = 0
        rejected = False
        replaced = False

        async def limited_receive():
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    rejected = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message) -> None:
            # Frameworks may turn a failed body read into their own 400: answer 413 instead.
            nonlocal replaced
            if rejected:
                if not replaced:
                    replaced = True
                    await self._reject(send, max_bytes)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not replaced:
                await self._reject(send, max_bytes)

    @staticmethod
    async def _reject(send, max_bytes: int) -> None:
        body = json.dumps(
            error_body("payload_too_large", f"request body exceeds {max_bytes} bytes", {"max_bytes": max_bytes})
        ).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
