"""GET/POST /login and POST /logout: the session and CSRF cookies of the web UI."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sdfleet.api.client_address import client_address
from sdfleet.api.deps import CSRF_COOKIE, SESSION_COOKIE, ServicesDep
from sdfleet.api.web.templating import is_https, templates
from sdfleet.domain.errors import RateLimited, Unauthenticated

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form(max_length=256)]


def safe_next(value: str | None) -> str:
    """A local path to go to after login; another host, a scheme or `//host` becomes `/` (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _csrf_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(CSRF_COOKIE, value, httponly=False, samesite="lax", secure=is_https(request), path="/")


def _login_form(request: Request, *, next_path: str, error: str | None = None, status: int = 200,
                username: str = "") -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = templates.TemplateResponse(
        request, "login.html", {"next": next_path, "error": error, "csrf": token, "username": username},
        status_code=status,
    )
    response.headers["Cache-Control"] = "no-store"
    _csrf_cookie(response, request, token)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, services: ServicesDep, next: str | None = None) -> Response:
    """The sign-in form; a visitor already signed in goes straight on to `next`."""
    target = safe_next(next)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            services.auth.authenticate(cookie)
            return RedirectResponse(target, status_code=303)
        except Unauthenticated:
            pass
    return _login_form(request, next_path=target)


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, services: ServicesDep, username: FormText, password: FormText,
                 csrf: FormText = "", next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    """Check the password, set the HttpOnly session cookie and a fresh CSRF cookie, go on to `next`."""
    target = safe_next(next)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf, expected):
        return _login_form(request, next_path=target, status=403, username=username,
                           error="The form expired. Please sign in again.")
    try:
        issued = services.auth.login(username=username, password=password, client_address=client_address(request))
    except RateLimited as exc:
        return _login_form(request, next_path=target, status=429, username=username, error=str(exc).capitalize())
    except Unauthenticated:
        return _login_form(request, next_path=target, status=401, username=username,
                           error="Wrong username or password.")
    response = RedirectResponse(target, status_code=303)
    max_age = None
    if issued.expires_at is not None:
        expires = issued.expires_at if issued.expires_at.tzinfo else issued.expires_at.replace(tzinfo=UTC)
        max_age = max(60, int((expires - datetime.now(UTC)).total_seconds()))
    response.set_cookie(SESSION_COOKIE, issued.secret, max_age=max_age, httponly=True, samesite="lax",
                        secure=is_https(request), path="/")
    _csrf_cookie(response, request, secrets.token_urlsafe(32))
    return response


@router.post("/logout")
def logout(request: Request, services: ServicesDep, csrf: FormText = "") -> Response:
    """Revoke the session (the CSRF token must match) and clear the cookies."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    sent = csrf or request.headers.get("x-csrf-token", "")
    if not expected or not hmac.compare_digest(sent, expected):
        return Response("missing or wrong CSRF token", status_code=403, media_type="text/plain")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            services.auth.logout(services.auth.authenticate(cookie))
        except Unauthenticated:
            pass
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response
