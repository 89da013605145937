"""The FastAPI application: routers, error envelope, middleware, OpenAPI."""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI

import sdfleet
from sdfleet.api.a1111 import controlnet as a1111_controlnet
from sdfleet.api.a1111 import routes as a1111_routes
from sdfleet.api.a1111 import startup as a1111_startup
from sdfleet.api.a1111 import styles as a1111_styles
from sdfleet.api.comfy.frontend import inline_script_hashes
from sdfleet.api.comfy.mount import mount_comfy
from sdfleet.api.errors import install_error_handlers
from sdfleet.api.metrics_middleware import HttpMetricsMiddleware
from sdfleet.api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from sdfleet.api.openapi_errors import install_error_responses
from sdfleet.api.route_paths import documented_paths
from sdfleet.api.routes import (
    api_keys,
    audit,
    auth,
    gallery,
    generation,
    health,
    inferences,
    job_media,
    metrics,
    model_notes,
    preferences,
    roles,
    styles,
    trainings,
    users,
    worker,
    worker_training,
)
from sdfleet.api.routes import checkpoints as checkpoint_routes
from sdfleet.api.routes import datasets as dataset_routes
from sdfleet.api.routes import endpoints as endpoint_routes
from sdfleet.api.routes import notifications as notification_routes
from sdfleet.api.routes import objects as object_routes
from sdfleet.api.routes import workflows as workflow_routes
from sdfleet.api.security_headers import SecurityHeadersMiddleware, comfy_frontend_policy, main_app_policy
from sdfleet.api.web.site import install_web
from sdfleet.services.container import Services

API_PREFIX = "/api/v1"


class Background(Protocol):
    """Something that runs beside the app (reaper, launcher): started and stopped with it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(services: Services, *, max_request_bytes: int = 8 * 1024 * 1024,
               body_limit_exempt: tuple[str, ...] = (), body_limits: tuple[tuple[str, int], ...] = (),
               background: Sequence[Background] = (),
               public_url: str | None = None, trusted_proxies: tuple[str, ...] = ()) -> FastAPI:
    """Build the app around an already-wired services container."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Before uvicorn listens: building the route table's path templates on a first request held the event
        # loop ~0.4 s (seconds on a loaded box), stalling every request in flight (web pages read them too).
        documented_paths(app)
        for task in background:
            task.start()
        try:
            yield
        finally:
            for task in reversed(background):
                task.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="sdfleet",
        version=sdfleet.__version__,
        description="Self-hosted, multi-user Stable Diffusion platform.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    app.state.trusted_proxies = trusted_proxies
    install_error_handlers(app)
    install_error_responses(app)
    for module in (auth, preferences, styles, gallery, users, roles, api_keys, audit, health, inferences, job_media,
                   model_notes, generation, worker, worker_training, trainings):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(checkpoint_routes.router, prefix=API_PREFIX)
    app.include_router(a1111_routes.router)
    app.include_router(a1111_styles.router)
    app.include_router(a1111_startup.router)
    app.include_router(a1111_controlnet.router)
    app.include_router(endpoint_routes.router, prefix=API_PREFIX)

    app.include_router(workflow_routes.router, prefix=API_PREFIX)
    app.include_router(notification_routes.router, prefix=API_PREFIX)
    app.include_router(object_routes.router, prefix=API_PREFIX)
    app.include_router(dataset_routes.router, prefix=API_PREFIX)
    app.include_router(metrics.router)
    mount_comfy(app)
    install_web(app, public_url=public_url)

    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=max_request_bytes,
        exempt=tuple(re.compile(p) for p in body_limit_exempt),
        overrides=tuple((re.compile(p), limit) for p, limit in body_limits),
    )
    if services.metrics is not None:
        app.add_middleware(HttpMetricsMiddleware, observe=services.metrics.http_request,
                           templates=lambda: documented_paths(app))
    comfy_policy = comfy_frontend_policy(inline_script_hashes())
    app.add_middleware(SecurityHeadersMiddleware, page_policy=main_app_policy(comfy_policy))
    app.add_middleware(RequestIdMiddleware)
    return app
