"""Users: create, list, update, delete — with the seed's RBAC rules."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sdfleet.domain.accounts import CredentialKind, Principal, Role, User
from sdfleet.domain.audit import AuditAction, AuditEvent, AuditTarget, field_changes
from sdfleet.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from sdfleet.domain.ids import new_id
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import ADMIN_ROLE, Permission
from sdfleet.domain.trainings import training_prefix
from sdfleet.domain.validation import (
    check_password,
    check_role_name,
    check_username,
    is_storable,
    is_valid_username,
)
from sdfleet.objects.base import ObjectStore
from sdfleet.services.audit import AuditLog
from sdfleet.services.authorization import authorize, authorize_grant, authorize_over, is_self_or
from sdfleet.services.credentials import PasswordHasher
from sdfleet.services.login_limiter import LoginLimiter
from sdfleet.store.accounts import AccessEnded, AccountReads, SqlAccounts, UserWrite
from sdfleet.store.user_data import OwnedIds

MAX_ROLES_PER_USER = 32
log = logging.getLogger("sdfleet.users")


def user_object_prefixes(user_id: str, owned: OwnedIds) -> list[str]:
    """The object-store prefixes holding a user's data."""
    return [f"inputs/{user_id}/",
            *(prefix for job_id in owned.job_ids for prefix in (f"outputs/{job_id}/", training_prefix(job_id))),
            *(f"datasets/{dataset_id}/" for dataset_id in owned.dataset_ids)]


@dataclass(frozen=True)
class UserChanges:
    """A partial update of a user; None leaves a field as it is."""

    roles: list[str] | None = None
    email: str | None = None
    disabled: bool | None = None
    password: str | None = None
    #: required to change one's own password (an API key or a session alone is not enough)
    current_password: str | None = None
    #: with a password change: also delete every API key of the user
    revoke_api_keys: bool = False


def _check_email(email: str | None) -> str | None:
    if email is None or email == "":
        return email
    if len(email) > 254 or email.count("@") != 1 or any(c.isspace() or not c.isprintable() for c in email):
        raise InvalidInput("email must be a single address like name@example.com", field="email")
    local, _, domain = email.partition("@")
    if not local or "." not in domain:
        raise InvalidInput("email must be a single address like name@example.com", field="email")
    return email


def _audited(user: User) -> dict:
    """The fields of a user the audit log follows."""
    return {"roles": list(user.roles), "email": user.email, "disabled": user.disabled}


def _held(reads: AccountReads, user: User) -> frozenset[Permission]:
    """Every permission a user holds through their roles."""
    return frozenset().union(*(r.permissions for r in reads.roles(list(user.roles))))


def _target(user: User) -> AuditTarget:
    return AuditTarget("user", user.id, user.username)


class UserService:
    """User management; who may see or change whom is decided here."""

    def __init__(self, *, accounts: SqlAccounts, hasher: PasswordHasher, limiter: LoginLimiter, audit: AuditLog,
                 clock: Callable[[], datetime], objects: ObjectStore | None = None) -> None:
        self._accounts = accounts
        self._objects = objects
        self._hasher = hasher
        self._limiter = limiter
        self._audit = audit
        self._clock = clock

    @staticmethod
    def _role_names(roles: list[str]) -> list[str]:
        """The names of the roles asked for, checked, sorted, once each."""
        if len(roles) > MAX_ROLES_PER_USER:
            raise InvalidInput(f"a user may have at most {MAX_ROLES_PER_USER} roles", field="roles")
        return sorted({check_role_name(r, field="roles") for r in roles})

    @staticmethod
    def _roles_checked(existing: list[Role], principal: Principal | None, names: list[str]) -> list[str]:
        """`names` when they all exist (`existing`: those that do) and the principal may grant them."""
        found = {r.name: r for r in existing}
        unknown = [n for n in names if n not in found]
        if unknown:
            raise InvalidInput(f"unknown role(s): {', '.join(unknown)}", field="roles", details={"roles": unknown})
        if principal is not None:
            granted = frozenset().union(*(found[n].permissions for n in names)) if names else frozenset()
            authorize_grant(principal, granted)
        return names

    def create(
        self,
        principal: Principal | None,
        *,
        username: str,
        password: str,
        roles: list[str],
        email: str | None = None,
    ) -> User:
        """Create a user. `principal=None` is the operator at the CLI (no permission check)."""
        if principal is not None:
            authorize(principal, Permission.USER_ALL)
        check_username(username)
        check_password(password)
        email = _check_email(email)
        names = self._role_names(roles)
        password_hash = self._hasher.hash(password)
        user = self._accounts.add_user(
            User(id=new_id(), username=username, roles=tuple(names), email=email or None),
            password_hash=password_hash, now=self._clock(),
            check=lambda existing: self._roles_checked(existing, principal, names),
            audit=lambda user: self._audit.event(AuditAction.USER_CREATE, actor=principal, target=_target(user),
                                                 changes=field_changes({}, _audited(user))))
        if user is None:
            raise Conflict(f"user {username!r} already exists", details={"field": "username"})
        return user

    def list(self, principal: Principal | None, page: PageRequest) -> Page[User]:
        """Every user for `user:all`; only oneself otherwise."""
        if principal is not None and not principal.can(Permission.USER_ALL):
            return Page(items=[principal.user] if page.after is None else [], next_cursor=None)
        return self._accounts.list_users(page)

    def get(self, principal: Principal | None, username: str) -> User:
        """One user by name; users without `user:all` see only themselves (others are 404)."""
        user = None
        if is_valid_username(username):
            user = self._accounts.get_user_by_username(username)
        if user is None or (principal is not None and not is_self_or(principal, user.id, Permission.USER_ALL)):
            raise NotFound(f"user {username!r} not found")
        return user

    def update(self, principal: Principal | None, username: str, changes: UserChanges) -> User:
        """Update a user. Oneself: password (with the current one) and email; roles and disabled need `user:all`.

        Another user may be changed only by a `user:all` holder who holds every permission they hold."""
        target = self.get(principal, username)
        on_other = principal is not None and principal.user_id != target.id
        admin_change = changes.roles is not None or changes.disabled is not None
        if principal is not None and (admin_change or on_other):
            authorize(principal, Permission.USER_ALL)
        if changes.revoke_api_keys and changes.password is None:
            raise InvalidInput("revoke_api_keys goes with a password change", field="revoke_api_keys")
        if changes.password is not None:
            check_password(changes.password)
            if principal is not None and not on_other:
                self._check_current_password(principal, changes.current_password)
        email = _check_email(changes.email)
        password_hash = self._hasher.hash(changes.password) if changes.password is not None else None
        ends_access = changes.password is not None or bool(changes.disabled)
        own = principal is not None and principal.user_id == target.id
        keep = principal.credential_id if own and principal.credential is CredentialKind.SESSION else None

        def decide(current: User, reads: AccountReads) -> UserWrite:
            """Inside the write transaction, so the checks see what will be changed."""
            if on_other:
                authorize_over(principal, _held(reads, current), target=f"user {current.username!r}")
            roles = None
            if changes.roles is not None:
                names = self._role_names(changes.roles)
                roles = self._roles_checked(reads.roles(names), principal, names)
            if principal is not None and roles is not None:
                # Removing a role is also a grant decision: one may only take away what one could give.
                removed = set(current.roles) - set(roles)
                authorize_grant(principal, frozenset().union(*(r.permissions for r in reads.roles(list(removed)))))
            losing_admin = ADMIN_ROLE in current.roles and (
                (roles is not None and ADMIN_ROLE not in roles) or changes.disabled is True
            )
            if losing_admin and not current.disabled and reads.active_users_with_role(ADMIN_ROLE) <= 1:
                raise Conflict("cannot remove the last active admin")
            # After a password change or disabling: end the user's sessions (not the one changing its own
            # password; every one when disabled) and, when asked, delete their API keys.
            return UserWrite(roles=roles, email=email, disabled=changes.disabled, password_hash=password_hash,
                             end_sessions=ends_access, keep_session=None if changes.disabled else keep,
                             delete_api_keys=ends_access and changes.revoke_api_keys)

        def audit(before: User, after: User, ended: AccessEnded | None) -> list[AuditEvent]:
            events = []
            if diff := field_changes(_audited(before), _audited(after)):
                events.append(self._audit.event(AuditAction.USER_UPDATE, actor=principal, target=_target(after),
                                                changes=diff))
            if changes.password is not None and ended is not None:
                events.append(self._audit.event(
                    AuditAction.USER_PASSWORD, actor=principal, target=_target(after),
                    changes={"password": {"changed": True}},
                    details={"by": "self" if own else ("operator" if principal is None else "admin"),
                             "sessions_revoked": ended.sessions, "api_keys_revoked": ended.api_keys}))
            return events

        user = self._accounts.update_user(target.id, now=self._clock(), decide=decide, audit=audit)
        if user is None:
            raise NotFound(f"user {target.username!r} not found")
        return user

    def _check_current_password(self, principal: Principal, password: str | None) -> None:
        """Changing one's own password needs the current one; wrong ones count as failed logins."""
        username = principal.user.username
        if password is None:
            raise InvalidInput("current_password is required to change your own password", field="current_password")
        self._limiter.check(username=username, address=principal.address)
        stored = self._accounts.credentials(username, write_lock=False)
        if stored is None or not is_storable(password) or not self._hasher.verify(stored.password_hash, password):
            self._limiter.failed(username=username, address=principal.address)
            self._audit.record(AuditAction.USER_PASSWORD_FAILED, actor=principal, target=_target(principal.user))
            raise Forbidden("current_password is wrong", details={"field": "current_password"})

    def delete(self, principal: Principal | None, username: str) -> None:
        """Delete a user, their rows, and their objects: input images, job outputs and training artifacts,
        dataset images. Models they registered stay in the team's registry (README, "Security")."""
        if principal is not None:
            authorize(principal, Permission.USER_ALL)
        target = self.get(principal, username)
        if principal is not None and principal.user_id == target.id:
            raise Conflict("you cannot delete yourself")

        def check(current: User, reads: AccountReads) -> None:
            """Inside the write transaction, so the checks see what will be deleted."""
            if principal is not None:
                authorize_over(principal, _held(reads, current), target=f"user {current.username!r}")
            if ADMIN_ROLE in current.roles and not current.disabled and reads.active_users_with_role(ADMIN_ROLE) <= 1:
                raise Conflict("cannot delete the last active admin")

        deleted = self._accounts.delete_user(
            target.id, check=check,
            audit=lambda current, owned: self._audit.event(
                AuditAction.USER_DELETE, actor=principal, target=_target(current),
                changes=field_changes(_audited(current), {}),
                details={"object_prefixes": len(user_object_prefixes(current.id, owned))}))
        if deleted is None:
            raise NotFound(f"user {target.username!r} not found")
        prefixes = user_object_prefixes(target.id, deleted[1])
        self._delete_objects(prefixes)

    def _delete_objects(self, prefixes: list[str]) -> None:
        """After the rows are gone (nothing reaches these objects any more): a failure leaves orphans, logged."""
        if self._objects is None:
            return
        for prefix in prefixes:
            try:
                self._objects.delete_prefix(prefix)
            except Exception:
                log.exception("could not delete the objects under %s of a deleted user", prefix)

    def reset_password(self, username: str, password: str) -> User:
        """Operator path (CLI): set a new password and end the user's sessions."""
        return self.update(None, username, UserChanges(password=password))

    def ensure_admin(self, *, username: str, password: str) -> User | None:
        """Create the super admin when there are no users at all; returns it, or None if users exist."""
        if self._accounts.count_users() > 0:
            return None
        return self.create(None, username=username, password=password, roles=[ADMIN_ROLE])


