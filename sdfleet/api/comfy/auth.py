"""Who is calling the ComfyUI API: Bearer or Basic credentials, or the browser session.

The official frontend cannot send sdfleet's CSRF header, so a cookie-authenticated write is accepted
when the browser says it comes from this same origin (`Origin`, or `Sec-Fetch-Site: same-origin`);
scripts use Bearer/Basic and are not affected."""

from __future__ import annotations

import dataclasses
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from sdfleet.api.client_address import client_address
from sdfleet.api.deps import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, ServicesDep, principal_from_request
from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Forbidden, Unauthenticated
from sdfleet.services.container import Services

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def same_origin(connection: HTTPConnection) -> bool:
    """Whether the browser reports the request as coming from a page of this host."""
    if connection.headers.get("sec-fetch-site") == "same-origin":
        return True
    origin = connection.headers.get("origin")
    if not origin:
        return False
    return urlsplit(origin).netloc == connection.headers.get("host")


def comfy_principal(request: Request, services: ServicesDep) -> Principal:
    """The caller; cookie writes need the CSRF header or a same-origin browser request."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not header and cookie and request.method not in _SAFE_METHODS:
        csrf_ok = request.cookies.get(CSRF_COOKIE) and request.headers.get(CSRF_HEADER) == request.cookies.get(
            CSRF_COOKIE)
        if not csrf_ok and not same_origin(request):
            raise Forbidden("cross-site request refused: send X-CSRF-Token or use an API key")
        principal = dataclasses.replace(services.auth.authenticate(cookie), address=client_address(request))
    else:
        principal = principal_from_request(request, services)
    request.state.principal = principal
    return principal


ComfyPrincipal = Annotated[Principal, Depends(comfy_principal)]


def socket_principal(connection: HTTPConnection, services: Services) -> Principal:
    """A WebSocket's caller: Authorization header, or the session cookie from a same-origin page."""
    header = connection.headers.get("authorization")
    cookie = connection.cookies.get(SESSION_COOKIE)
    if header:
        return principal_from_request(connection, services)  # type: ignore[arg-type]
    if cookie:
        origin = connection.headers.get("origin")
        if origin and urlsplit(origin).netloc != connection.headers.get("host"):
            raise Forbidden("cross-site WebSocket refused")
        return dataclasses.replace(services.auth.authenticate(cookie), address=client_address(connection))
    raise Unauthenticated("authentication required: session cookie, Bearer key or Basic username:api_key")
