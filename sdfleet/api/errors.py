"""The error envelope: every error answer is {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sdfleet.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthenticated,
)

log = logging.getLogger("sdfleet.api")

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    InvalidInput: 422,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    RateLimited: 429,
    QuotaExceeded: 429,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_input",
    429: "rate_limited",
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    """Build the envelope."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


class SafeJSONResponse(JSONResponse):
    """JSON that can always be sent: text that is not valid Unicode (a lone surrogate echoed from the request)
    is written as \\u escapes instead of failing to encode."""

    def render(self, content) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(status: int, code: str, message: str, details: dict | None = None, headers=None) -> JSONResponse:
    """A JSONResponse carrying the envelope."""
    return SafeJSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def _field_path(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    items = []
    for e in errors[:20]:
        field = _field_path(tuple(e.get("loc", ())))
        message = e.get("msg", "invalid value")
        if e.get("type") == "extra_forbidden":
            message = "unknown field"
        elif e.get("type") == "missing":
            message = "field required"
        items.append({"field": field, "message": message, "type": e.get("type")})
    first = items[0] if items else {"field": "body", "message": "invalid request"}
    return error_response(
        422, "invalid_input", f"{first['field']}: {first['message']}", {"field": first["field"], "errors": items}
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to the envelope; never leak a 500's internals."""

    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        status = next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 400)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if isinstance(exc, Unauthenticated):
            headers = {"WWW-Authenticate": "Bearer"}
        return error_response(status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route matching the path; a path served by
            # several routes (GET and POST /users) answers every one of them.
            from sdfleet.api.openapi_errors import allowed_methods

            allow = allowed_methods(request.app, request.scope) or (headers or {}).get("Allow", "").split(", ")
            headers = {**(headers or {}), "Allow": ", ".join(m for m in allow if m)}
            message = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = request.scope.get("state", {}).get("request_id")
        log.exception("unhandled error", extra={"request_id": request_id})
        return error_response(500, "internal_error", "internal error; the request id identifies it in the logs",
                              {"request_id": request_id})
