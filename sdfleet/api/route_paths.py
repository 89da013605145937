"""The app's documented path templates, read from its routes instead of generating the OpenAPI schema."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts


def documented_paths(app: FastAPI) -> frozenset[str]:
    """The path templates `app.openapi()` lists (`/api/v1/inferences/{job_id}`), computed once per app.

    Generating the schema costs a second or more of CPU, which blocked the event loop on a first request."""
    paths = getattr(app.state, "documented_paths", None)
    if paths is None:
        paths = frozenset(context.path_format for context in iter_route_contexts(app.routes)
                          if isinstance(context.original_route, APIRoute) and context.original_route.include_in_schema)
        app.state.documented_paths = paths
    return paths
