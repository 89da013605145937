"""Errors raised by services; the API layer maps each to one HTTP status and the error envelope."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every expected error: a stable `code`, a human message and optional details."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(DomainError):
    """The request is well-formed but a value is wrong; `field` names it."""

    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None) -> None:
        merged = dict(details or {})
        if field is not None:
            merged.setdefault("field", field)
        super().__init__(message, details=merged)
        self.field = field


class Unauthenticated(DomainError):
    """No valid credentials were presented."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """The caller is known but lacks the permission for this action."""

    code = "forbidden"


class NotFound(DomainError):
    """The object does not exist or the caller may not see it."""

    code = "not_found"


class Conflict(DomainError):
    """The action clashes with the current state (duplicate name, object in use …)."""

    code = "conflict"


class Gone(DomainError):
    """The object existed but its content is no longer available (e.g. a deleted input image)."""

    code = "gone"


class RateLimited(DomainError):
    """Too many attempts; retry after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class QuotaExceeded(DomainError):
    """A per-user limit (queued jobs, running jobs …) is reached."""

    code = "quota_exceeded"
