"""The one place that decides who may do what."""

from __future__ import annotations

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Forbidden
from sdfleet.domain.permissions import Permission


def authorize(principal: Principal, permission: Permission) -> None:
    """Raise Forbidden unless the principal holds `permission`."""
    if not principal.can(permission):
        raise Forbidden(f"this action needs the {permission.value} permission", details={"permission": permission.value})


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
