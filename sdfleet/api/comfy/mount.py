"""Where the ComfyUI surface is served: under `/comfy` on the main app, and at the root of ComfyUI's own port."""

from __future__ import annotations

from fastapi import FastAPI

import sdfleet
from sdfleet.api.comfy import frontend, routes
from sdfleet.api.comfy.socket import comfy_socket
from sdfleet.api.errors import install_error_handlers
from sdfleet.api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from sdfleet.api.security_headers import SecurityHeadersMiddleware, comfy_frontend_policy
from sdfleet.services.container import Services

MAX_REQUEST_BYTES = 40 * 1024 * 1024  # image uploads


def mount_comfy(app: FastAPI, *, prefix: str = "/comfy", login_url: str = "/login") -> None:
    """Add the frontend at `{prefix}/`, the API at `{prefix}/api/…` (and `{prefix}/…`) and `{prefix}/ws`."""
    app.include_router(routes.router, prefix=f"{prefix}/api")
    app.add_api_websocket_route(f"{prefix}/ws", comfy_socket)
    app.add_api_websocket_route(f"{prefix}/api/ws", comfy_socket)
    app.include_router(frontend.frontend_router(base=prefix, login_url=login_url))
    app.include_router(routes.router, prefix=prefix)
    app.mount(prefix, frontend.static_files(), name=f"comfy-static{prefix.replace('/', '-')}")
    if prefix:
        # The frontend asks for a few images at the site root whatever its base path (App Mode's landing
        # image, the favicon's progress frames): its public images, served there too.
        app.mount("/assets/images", frontend.static_files(subdirectory="assets/images"), name="comfy-root-images")


def create_comfy_app(services: Services, *, login_url: str) -> FastAPI:
    """ComfyUI's own port: `/prompt`, `/api/prompt`, `/ws`, `/history`, `/view` … and the frontend at `/`."""
    app = FastAPI(title="sdfleet ComfyUI", version=sdfleet.__version__, openapi_url=None, docs_url=None,
                  redoc_url=None)
    app.state.services = services
    install_error_handlers(app)
    app.include_router(routes.router, prefix="/api")
    app.add_api_websocket_route("/ws", comfy_socket)
    app.add_api_websocket_route("/api/ws", comfy_socket)
    app.include_router(frontend.frontend_router(base="", login_url=login_url))
    app.include_router(routes.router)
    app.mount("/", frontend.static_files(), name="comfy-static")
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_REQUEST_BYTES, exempt=())
    policy = comfy_frontend_policy(frontend.inline_script_hashes())
    app.add_middleware(SecurityHeadersMiddleware, page_policy=lambda _path: policy)
    app.add_middleware(RequestIdMiddleware)
    return app
