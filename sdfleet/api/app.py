"""The FastAPI application: routers, error envelope, middleware, OpenAPI."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

import sdfleet
from sdfleet.api.errors import install_error_handlers
from sdfleet.api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from sdfleet.api.routes import api_keys, auth, health, roles, users
from sdfleet.services.container import Services

API_PREFIX = "/api/v1"


def create_app(services: Services, *, max_request_bytes: int = 8 * 1024 * 1024,
               body_limit_exempt: tuple[str, ...] = ()) -> FastAPI:
    """Build the app around an already-wired services container."""
    app = FastAPI(
        title="sdfleet",
        version=sdfleet.__version__,
        description="Self-hosted, multi-user Stable Diffusion platform.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    install_error_handlers(app)
    for module in (auth, users, roles, api_keys, health):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=max_request_bytes,
        exempt=tuple(re.compile(p) for p in body_limit_exempt),
    )
    app.add_middleware(RequestIdMiddleware)
    return app
