"""Mount the web UI on an app: page routes, login/logout and the static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from sdfleet.api.web import login, notification_pages, pages

STATIC_DIR = Path(__file__).parent / "static"


def install_web(app: FastAPI, *, public_url: str | None = None) -> None:
    """Add `/login`, `/logout`, the pages and `/static/` (none of them in the OpenAPI schema)."""
    app.state.public_url = public_url.rstrip("/") if public_url else None
    app.include_router(login.router)
    app.include_router(pages.router)
    app.include_router(notification_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
