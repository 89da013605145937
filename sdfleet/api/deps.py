"""FastAPI dependencies: the services container and the authenticated principal."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
from typing import Annotated

from fastapi import Depends, Query, Request

from sdfleet.api.client_address import client_address
from sdfleet.domain.accounts import CredentialKind, Principal
from sdfleet.domain.errors import Forbidden, Unauthenticated
from sdfleet.domain.pagination import MAX_LIMIT, PageRequest
from sdfleet.services.container import Services

SESSION_COOKIE = "sdfleet_session"
CSRF_COOKIE = "sdfleet_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_services(request: Request) -> Services:
    """The container built by bootstrap."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def _basic_credentials(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthenticated("malformed Basic credentials") from exc
    username, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthenticated("malformed Basic credentials")
    return username, secret


def principal_from_request(request: Request, services: Services) -> Principal:
    """Authenticate from `Authorization` (Bearer token, or Basic username:api_key) or the session cookie;
    the principal carries the client's address (for the audit log)."""
    return dataclasses.replace(_authenticate(request, services), address=client_address(request))


def _authenticate(request: Request, services: Services) -> Principal:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value.strip():
            return services.auth.authenticate(value.strip())
        if scheme == "basic":
            username, secret = _basic_credentials(value.strip())
            principal = services.auth.authenticate(secret)
            # Basic is for scripts holding an API key; a session token there would outlive the browser it
            # was issued to in every client's saved credentials.
            if principal.user.username != username or principal.credential is not CredentialKind.API_KEY:
                raise Unauthenticated("invalid credentials: Basic authentication takes username:api_key")
            return principal
        raise Unauthenticated("unsupported Authorization scheme; use Bearer <token> or Basic username:api_key")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal = services.auth.authenticate(cookie)
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            expected = request.cookies.get(CSRF_COOKIE, "")
            if not expected or not hmac.compare_digest(sent, expected):
                raise Forbidden("missing or wrong CSRF token (send the sdfleet_csrf cookie value as X-CSRF-Token)")
        return principal
    raise Unauthenticated("authentication required: send Authorization: Bearer <token>")


def current_principal(request: Request, services: ServicesDep) -> Principal:
    """The caller; 401 without valid credentials."""
    principal = principal_from_request(request, services)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def page_request(
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = None,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")] = None,
) -> PageRequest:
    """Parse `?limit=&cursor=`."""
    return PageRequest.parse(cursor=cursor, limit=limit)


PageDep = Annotated[PageRequest, Depends(page_request)]
