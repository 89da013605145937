"""The one place that decides who may do what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Forbidden, NotFound
from sdfleet.domain.ids import is_valid_id
from sdfleet.domain.permissions import Permission

R = TypeVar("R")


def authorize(principal: Principal, permission: Permission) -> None:
    """Raise Forbidden unless the principal holds `permission`."""
    if not principal.can(permission):
        raise Forbidden(f"this action needs the {permission.value} permission", details={"permission": permission.value})


def fetch_owned(principal: Principal, permission: Permission, record_id: str, *, fetch: Callable[[str], R | None],
                what: str, accept: Callable[[Any], bool] = lambda record: True) -> R:
    """Authorize, fetch the caller's own record (a malformed id is never looked up), else NotFound — another
    user's record is indistinguishable from a missing one. `accept` narrows further (a job's kind)."""
    authorize(principal, permission)
    record = fetch(record_id) if is_valid_id(record_id) else None
    if record is None or record.user_id != principal.user_id or not accept(record):
        raise NotFound(f"{what} {record_id!r} not found")
    return record


def authorize_every(principal: Principal) -> None:
    """Raise Forbidden unless the principal holds every permission there is (the admin role's set)."""
    missing = sorted(p.value for p in frozenset(Permission) - principal.permissions)
    if missing:
        raise Forbidden(
            f"this action needs every permission; you lack {', '.join(missing)}", details={"permissions": missing}
        )


def authorize_grant(principal: Principal, permissions: frozenset[Permission]) -> None:
    """Nobody grants a permission they do not hold."""
    missing = sorted(p.value for p in permissions - principal.permissions)
    if missing:
        raise Forbidden(
            f"you cannot grant permissions you do not hold: {', '.join(missing)}", details={"permissions": missing}
        )


def authorize_over(principal: Principal, held: frozenset[Permission], *, target: str) -> None:
    """Nobody changes, disables or deletes a user or role that holds a permission they lack.

    Without this a `user:all` holder could reset an admin's password and sign in as them."""
    missing = sorted(p.value for p in held - principal.permissions)
    if missing:
        raise Forbidden(
            f"you cannot change {target}: it holds permissions you do not: {', '.join(missing)}",
            details={"permissions": missing},
        )


def is_self_or(principal: Principal, user_id: str, permission: Permission) -> bool:
    """True when the principal is the user or holds `permission` (visibility of user records)."""
    return principal.user_id == user_id or principal.can(permission)
