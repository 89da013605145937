"""The Jinja2 environment of the web UI and what every page is rendered with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates

import sdfleet
from sdfleet.api.route_paths import documented_paths
from sdfleet.domain.accounts import Principal
from sdfleet.domain.permissions import Permission

ENDPOINTS_API = "/api/v1/endpoints"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class NavItem:
    """A top-level page: its path, label and the permission it needs (None: every signed-in user)."""

    path: str
    label: str
    permission: Permission | None


NAV: tuple[NavItem, ...] = (
    NavItem("/", "Generate", Permission.INFERENCE_ALL),
    NavItem("/gallery", "Gallery", None),
    NavItem("/queue", "Queue", Permission.INFERENCE_ALL),
    NavItem("/workflows", "Workflows", Permission.INFERENCE_ALL),
    NavItem("/models", "Models", Permission.CHECKPOINT_ALL),
    NavItem("/train", "Train", Permission.TRAIN_ALL),
    NavItem("/endpoints", "Endpoints", Permission.ENDPOINT_ALL),
    NavItem("/settings", "API & settings", None),
)


def public_url(request: Request) -> str:
    """The base URL users reach this server at (configured, else the one of this request)."""
    configured = getattr(request.app.state, "public_url", None)
    return configured or str(request.base_url).rstrip("/")


def is_https(request: Request) -> bool:
    """Whether cookies must be `Secure`: the public URL (or this request) is https."""
    return public_url(request).startswith("https://")


def page_context(request: Request, principal: Principal, *, active: str, **extra) -> dict:
    """What base.html needs: the user, the navigation they may use, their permissions."""
    permissions = sorted(p.value for p in principal.permissions)
    nav = [item for item in NAV if item.permission is None or principal.can(item.permission)]
    return {
        "request": request,
        "user": principal.user,
        "permissions": permissions,
        "nav": nav,
        "active": active,
        "version": sdfleet.__version__,
        "public_url": public_url(request),
        # route paths, not `app.openapi()`: generating the schema on a first page view blocked the event loop
        "endpoints_api": ENDPOINTS_API in documented_paths(request.app),
        **extra,
    }
