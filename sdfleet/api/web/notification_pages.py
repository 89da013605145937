"""The pages behind the links in notification mail: confirm an address, unsubscribe.

Following a link shows a button; the POST does it (mail scanners that open links do not confirm or
unsubscribe anyone). The POST also serves RFC 8058 one-click unsubscribe (`List-Unsubscribe-Post`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from sdfleet.api.deps import ServicesDep
from sdfleet.api.web.templating import templates
from sdfleet.domain.errors import DomainError

router = APIRouter(include_in_schema=False)
Token = Annotated[str, Query(max_length=1024)]


def _page(request: Request, status: int = 200, **context) -> Response:
    response = templates.TemplateResponse(request, "notification_link.html",
                                          {"error": None, "done": None, "ask": None, **context},
                                          status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/notifications/confirm", response_class=HTMLResponse)
def confirm_page(request: Request, token: Token = "") -> Response:
    """Ask to confirm the address of a confirmation link."""
    return _page(request, heading="Confirm your address", token=token, button="Confirm this address",
                 ask="Confirm that this address may receive sdfleet notifications.")


@router.post("/notifications/confirm", response_class=HTMLResponse)
def confirm(request: Request, services: ServicesDep, token: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """Confirm the address."""
    try:
        sub = services.notifications.confirm(token)
    except DomainError as exc:
        return _page(request, 400 if exc.code == "invalid_input" else 404, heading="Confirm your address",
                     error=exc.message)
    return _page(request, heading="Address confirmed", done=f"{sub.target} now receives your notifications.")


@router.get("/notifications/unsubscribe", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: Token = "") -> Response:
    """Ask to unsubscribe the address of an unsubscribe link."""
    return _page(request, heading="Unsubscribe", token=token, button="Unsubscribe",
                 ask="Stop sending sdfleet notifications to this address.")


@router.post("/notifications/unsubscribe", response_class=HTMLResponse)
def unsubscribe(request: Request, services: ServicesDep,
                token: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """Unsubscribe (also RFC 8058 one-click: the token is in the link's query)."""
    token = token or request.query_params.get("token", "")
    try:
        sub = services.notifications.unsubscribe(token)
    except DomainError as exc:
        return _page(request, 400 if exc.code == "invalid_input" else 404, heading="Unsubscribe", error=exc.message)
    address = sub.target if sub is not None else "This address"
    return _page(request, heading="Unsubscribed", done=f"{address} receives no more sdfleet notifications.")
