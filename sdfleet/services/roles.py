"""Roles: the built-ins and custom ones; nobody grants, edits or deletes what they do not hold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sdfleet.domain.accounts import Principal, Role
from sdfleet.domain.audit import AuditAction, AuditTarget, field_changes
from sdfleet.domain.errors import Conflict, NotFound
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import ADMIN_ROLE, BUILTIN_ROLES, Permission, parse_permissions
from sdfleet.domain.validation import check_label, check_role_name, is_valid_role_name
from sdfleet.services.audit import AuditLog
from sdfleet.services.authorization import authorize, authorize_grant, authorize_over
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database


def _audited(role: Role) -> dict:
    """The fields of a role the audit log follows."""
    return {"permissions": sorted(p.value for p in role.permissions), "description": role.description}


class RoleService:
    """Role management."""

    def __init__(self, *, database: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._audit = audit
        self._clock = clock

    def ensure_builtin(self) -> None:
        """Create the built-in roles; keep `admin` holding every permission (new ones included)."""
        with self._db.session(write_lock=True) as s:
            repo = AccountRepository(s)
            for name, permissions in BUILTIN_ROLES.items():
                existing = repo.get_role(name)
                if existing is None:
                    repo.add_role(
                        Role(name=name, permissions=permissions, builtin=True, created_at=self._clock(),
                             description=f"Built-in {name} role.")
                    )
                elif name == ADMIN_ROLE and existing.permissions != permissions:
                    repo.update_role(name, permissions=permissions, description=None)

    def list(self, principal: Principal, page: PageRequest) -> Page[Role]:
        """Every role (any signed-in user may read role names and permissions)."""
        with self._db.session() as s:
            return AccountRepository(s).list_roles(page)

    def get(self, principal: Principal, name: str) -> Role:
        """One role by name."""
        role = None
        if is_valid_role_name(name):
            with self._db.session() as s:
                role = AccountRepository(s).get_role(name)
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
        with self._db.session(write_lock=True) as s:
            repo = AccountRepository(s)
            if repo.get_role(name) is not None:
                raise Conflict(f"role {name!r} already exists", details={"field": "name"})
            role = repo.add_role(Role(name=name, permissions=perms, description=description, created_at=self._clock()))
            self._audit.record(AuditAction.ROLE_CREATE, actor=principal, target=AuditTarget("role", name, name),
                               changes=field_changes({}, _audited(role)), session=s)
            return role

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
        with self._db.session(write_lock=True) as s:
            updated = AccountRepository(s).update_role(name, permissions=perms, description=description)
            diff = field_changes(_audited(role), _audited(updated))
            if diff:
                self._audit.record(AuditAction.ROLE_UPDATE, actor=principal, target=AuditTarget("role", name, name),
                                   changes=diff, session=s)
            return updated

    def delete(self, principal: Principal, name: str) -> None:
        """Delete a role and remove it from its users; `admin` cannot be deleted."""
        authorize(principal, Permission.ROLE_ALL)
        role = self.get(principal, name)
        authorize_over(principal, role.permissions, target=f"role {name!r}")
        if name == ADMIN_ROLE:
            raise Conflict("the admin role cannot be deleted")
        with self._db.session(write_lock=True) as s:
            AccountRepository(s).delete_role(name)
            self._audit.record(AuditAction.ROLE_DELETE, actor=principal, target=AuditTarget("role", name, name),
                               changes=field_changes(_audited(role), {}), session=s)

    def permissions(self) -> list[Permission]:
        """Every permission there is."""
        return list(Permission)
