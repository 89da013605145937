"""The error answers each route really gives, declared in the OpenAPI document with the error envelope.

FastAPI documents only the success answer and its own 422 shape (which sdfleet replaces with the envelope).
This fills in the rest from what the route is: one that authenticates may answer 401 and 403, one with path
parameters 404, one with a body 400 (malformed) and 413 (too large); `EXTRA` adds the answers a few routes give
by their nature (409 conflicts, 429 limits, 410 gone). schemathesis checks the result against live answers
(tests/integration/api/test_openapi_fuzz.py): an answer a route gives but does not declare fails it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable: not_found, invalid_input, …"},
                "message": {"type": "string", "description": "what was wrong and what was expected"},
                "details": {"type": "object", "description": "e.g. `field` naming the bad input"},
            },
        },
    },
}
DESCRIPTIONS = {
    400: "Malformed request (the body is not valid JSON, or not the declared content type).",
    401: "Not signed in, or the credentials are invalid, expired or revoked.",
    403: "Signed in, but without the permission this needs (or a cookie session's write without its CSRF token).",
    404: "No such object, or one the caller may not see.",
    409: "Conflicts with the current state (a name in use, a job already finished, a stale fencing token).",
    410: "The object existed but is gone.",
    413: "The request body (or an image in it) is larger than allowed.",
    416: "The requested range is not satisfiable.",
    422: "Invalid input; `details.field` names it.",
    429: "Too many requests or over a quota; `Retry-After` says when to try again.",
}
#: answers a route gives by its nature, beyond what `_standard_codes` derives: (METHOD, path) → codes
EXTRA: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/api/v1/auth/login"): (401, 429),  # wrong credentials; the login limiter
    ("GET", "/api/v1/gallery"): (404,),  # a board or owner the caller cannot see
    ("POST", "/api/v1/gallery/download"): (404,),
    ("POST", "/api/v1/gallery/delete"): (404,),
    ("POST", "/api/v1/notifications/subscriptions"): (409,),
    ("GET", "/api/v1/objects/{key}"): (403,),  # a signed link with a wrong or expired signature
    ("POST", "/api/v1/inferences"): (409, 429),  # no endpoint can run it; the per-user limits
    ("POST", "/sdapi/v1/txt2img"): (409, 429),
    ("POST", "/sdapi/v1/img2img"): (409, 429),
    ("POST", "/api/v1/users"): (409,),
    ("PATCH", "/api/v1/users/{username}"): (409,),
    ("POST", "/api/v1/roles"): (409,),
    ("DELETE", "/api/v1/roles/{name}"): (409,),
    ("POST", "/api/v1/endpoints"): (409,),
    ("POST", "/api/v1/workflows"): (409,),
    ("POST", "/api/v1/datasets"): (409,),
    ("POST", "/api/v1/trainings"): (404, 409),  # a dataset or base model the caller cannot see
}
#: answers every route of a prefix may give
EXTRA_BY_PREFIX: tuple[tuple[str, tuple[int, ...]], ...] = ()


def install_error_responses(app: FastAPI, *, extra: dict[tuple[str, str], tuple[int, ...]] | None = None) -> None:
    """Make `app.openapi()` declare every route's error answers with the envelope."""
    table = {**EXTRA, **(extra or {})}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                             openapi_version=app.openapi_version)
        schema.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
        schema["components"]["schemas"].pop("HTTPValidationError", None)
        schema["components"]["schemas"].pop("ValidationError", None)
        for route in _api_routes(app):
            if not route.include_in_schema:
                continue
            path_item = schema["paths"].get(route.path_format, {})
            for method in route.methods:
                operation = path_item.get(method.lower())
                if operation is None:
                    continue
                codes = _standard_codes(route) | set(table.get((method, route.path_format), ()))
                for prefix, more in EXTRA_BY_PREFIX:
                    if route.path_format.startswith(prefix):
                        codes |= set(more)
                _declare(operation, codes)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, scope: dict) -> list[str]:
    """The methods some route of `app` answers at the request's path (the `Allow` header of a 405)."""
    methods: set[str] = set()
    for route in _api_routes(app):
        if route.path_regex.match(scope.get("path", "")):
            methods |= set(route.methods or ())
    return sorted(methods)


def _api_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute, included routers flattened (FastAPI ≥ 0.16x keeps them lazily as `_IncludedRouter`)."""
    try:
        from fastapi.openapi.utils import _get_api_route_for_openapi
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are plain APIRoutes
        return [r for r in app.routes if isinstance(r, APIRoute)]
    routes = (_get_api_route_for_openapi(context) for context in iter_route_contexts(app.routes))
    return [r for r in routes if r is not None]


def _standard_codes(route: APIRoute) -> set[int]:
    codes: set[int] = set()
    calls = _dependency_names(route.dependant)
    if calls & {"current_principal", "current_worker", "comfy_principal"}:
        codes |= {401, 403}
    if route.dependant.path_params:
        codes.add(404)
    if route.body_field is not None:
        codes |= {400, 413, 422}
    if route.dependant.query_params or route.dependant.path_params or route.dependant.header_params:
        codes.add(422)
    return codes


def _dependency_names(dependant) -> set[str]:
    names = set()
    for sub in dependant.dependencies:
        if sub.call is not None:
            names.add(getattr(sub.call, "__name__", ""))
        names |= _dependency_names(sub)
    return names


def _declare(operation: dict[str, Any], codes: set[int]) -> None:
    responses = operation.setdefault("responses", {})
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    for code in sorted(codes):
        entry = responses.setdefault(str(code), {"description": DESCRIPTIONS.get(code, "Error.")})
        if code >= 400:
            entry["content"] = {"application/json": {"schema": ref}}
            if code == 422:
                entry["description"] = DESCRIPTIONS[422]
