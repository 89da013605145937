"""Roles: the built-ins and custom ones; nobody grants, edits or deletes what they do not hold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sdfleet.domain.accounts import Principal, Role
from sdfleet.domain.audit import AuditAction, AuditEvent, AuditTarget, field_changes
from sdfleet.domain.errors import Conflict, NotFound
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import ADMIN_ROLE, BUILTIN_ROLES, Permission, parse_permissions
from sdfleet.domain.validation import check_label, check_role_name, is_valid_role_name
from sdfleet.services.audit import AuditLog
from sdfleet.services.authorization import authorize, authorize_grant, authorize_over
from sdfleet.store.accounts import SqlAccounts


def _audited(role: Role) -> dict:
    """The fields of a role the audit log follows."""
    return {"permissions": sorted(p.value for p in role.permissions), "description": role.description}


class RoleService:
    """Role management."""

    def __init__(self, *, accounts: SqlAccounts, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._accounts = accounts
        self._audit = audit
        self._clock = clock

    def ensure_builtin(self) -> None:
        """Create the built-in roles; keep `admin` holding every permission (new ones included)."""
        self._accounts.ensure_roles(
            [Role(name=name, permissions=permissions, builtin=True, created_at=self._clock(),
                  description=f"Built-in {name} role.") for name, permissions in BUILTIN_ROLES.items()],
            synced=frozenset({ADMIN_ROLE}))

    def list(self, principal: Principal, page: PageRequest) -> Page[Role]:
        """Every role (any signed-in user may read role names and permissions)."""
        return self._accounts.list_roles(page)

    def get(self, principal: Principal, name: str) -> Role:
        """One role by name."""
        role = None
        if is_valid_role_name(name):
            role = self._accounts.get_role(name)
        if role is None:
            raise NotFound(f"role {name!r} not found")
        return role

    def create(self, principal: Principal, *, name: str, permissions: list[str], description: str = "") -> Role:
        """Create a role with permissions the creator holds."""
        authorize(principal, Permission.ROLE_ALL)
        check_role_name(name)
        perms = parse_permissions(permissions)
        description = check_label(description, field="description", max_length=500) if description else ""
        authorize_grant(principal, perms)
        role = Role(name=name, permissions=perms, description=description, created_at=self._clock())
        event = self._audit.event(AuditAction.ROLE_CREATE, actor=principal, target=AuditTarget("role", name, name),
                                  changes=field_changes({}, _audited(role)))
        added = self._accounts.add_role(role, event=event)
        if added is None:
            raise Conflict(f"role {name!r} already exists", details={"field": "name"})
        return added

    def update(
        self, principal: Principal, name: str, *, permissions: list[str] | None, description: str | None
    ) -> Role:
        """Change a role's permissions or description; `admin` always keeps every permission."""
        authorize(principal, Permission.ROLE_ALL)
        role = self.get(principal, name)
        perms = parse_permissions(permissions) if permissions is not None else None
        if description:
            description = check_label(description, field="description", max_length=500)
        authorize_over(principal, role.permissions, target=f"role {name!r}")
        if perms is not None:
            if name == ADMIN_ROLE and perms != role.permissions:
                raise Conflict("the admin role always holds every permission")
            authorize_grant(principal, perms)

        def audit(updated: Role) -> AuditEvent | None:
            diff = field_changes(_audited(role), _audited(updated))
            return self._audit.event(AuditAction.ROLE_UPDATE, actor=principal, target=AuditTarget("role", name, name),
                                     changes=diff) if diff else None

        return self._accounts.update_role(name, permissions=perms, description=description, audit=audit)

    def delete(self, principal: Principal, name: str) -> None:
        """Delete a role and remove it from its users; `admin` cannot be deleted."""
        authorize(principal, Permission.ROLE_ALL)
        role = self.get(principal, name)
        authorize_over(principal, role.permissions, target=f"role {name!r}")
        if name == ADMIN_ROLE:
            raise Conflict("the admin role cannot be deleted")
        self._accounts.delete_role(name, event=self._audit.event(
            AuditAction.ROLE_DELETE, actor=principal, target=AuditTarget("role", name, name),
            changes=field_changes(_audited(role), {})))

    def permissions(self) -> list[Permission]:
        """Every permission there is."""
        return list(Permission)
