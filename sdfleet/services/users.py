"""Users: create, list, update, delete — with the seed's RBAC rules."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sdfleet.domain.accounts import CredentialKind, Principal, User
from sdfleet.domain.audit import AuditAction, AuditTarget, field_changes
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
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.user_data import OwnedIds, UserDataRepository

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


def _held(repo: AccountRepository, user: User) -> frozenset[Permission]:
    """Every permission a user holds through their roles."""
    return frozenset().union(*(r.permissions for r in repo.get_roles(list(user.roles))))


def _target(user: User) -> AuditTarget:
    return AuditTarget("user", user.id, user.username)


class UserService:
    """User management; who may see or change whom is decided here."""

    def __init__(self, *, database: Database, hasher: PasswordHasher, limiter: LoginLimiter, audit: AuditLog,
                 clock: Callable[[], datetime], objects: ObjectStore | None = None) -> None:
        self._db = database
        self._objects = objects
        self._hasher = hasher
        self._limiter = limiter
        self._audit = audit
        self._clock = clock

    def _roles_checked(self, repo: AccountRepository, principal: Principal | None, roles: list[str]) -> list[str]:
        if len(roles) > MAX_ROLES_PER_USER:
            raise InvalidInput(f"a user may have at most {MAX_ROLES_PER_USER} roles", field="roles")
        names = sorted({check_role_name(r, field="roles") for r in roles})
        found = {r.name: r for r in repo.get_roles(names)}
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
        password_hash = self._hasher.hash(password)
        with self._db.session() as s:
            repo = AccountRepository(s)
            names = self._roles_checked(repo, principal, roles)
            if repo.get_user_by_username(username) is not None:
                raise Conflict(f"user {username!r} already exists", details={"field": "username"})
            user = User(id=new_id(), username=username, roles=tuple(names), email=email or None)
            user = repo.add_user(user, password_hash=password_hash, now=self._clock())
            self._audit.record(AuditAction.USER_CREATE, actor=principal, target=_target(user),
                               changes=field_changes({}, _audited(user)), session=s)
            return user

    def list(self, principal: Principal | None, page: PageRequest) -> Page[User]:
        """Every user for `user:all`; only oneself otherwise."""
        if principal is not None and not principal.can(Permission.USER_ALL):
            return Page(items=[principal.user] if page.after is None else [], next_cursor=None)
        with self._db.session() as s:
            return AccountRepository(s).list_users(page)

    def get(self, principal: Principal | None, username: str) -> User:
        """One user by name; users without `user:all` see only themselves (others are 404)."""
        user = None
        if is_valid_username(username):
            with self._db.session() as s:
                user = AccountRepository(s).get_user_by_username(username)
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
        with self._db.session(write_lock=True) as s:
            repo = AccountRepository(s)
            target = self._current(repo, target)
            if on_other:
                authorize_over(principal, _held(repo, target), target=f"user {target.username!r}")
            roles = self._roles_checked(repo, principal, changes.roles) if changes.roles is not None else None
            if principal is not None and roles is not None:
                # Removing a role is also a grant decision: one may only take away what one could give.
                removed = set(target.roles) - set(roles)
                authorize_grant(principal, frozenset().union(*(r.permissions for r in repo.get_roles(list(removed)))))
            losing_admin = ADMIN_ROLE in target.roles and (
                (roles is not None and ADMIN_ROLE not in roles) or changes.disabled is True
            )
            if losing_admin and not target.disabled and repo.users_with_role(ADMIN_ROLE) <= 1:
                raise Conflict("cannot remove the last active admin")
            user = repo.update_user(
                target.id,
                now=self._clock(),
                roles=roles,
                email=email,
                disabled=changes.disabled,
                password_hash=password_hash,
            )
            diff = field_changes(_audited(target), _audited(user))
            if diff:
                self._audit.record(AuditAction.USER_UPDATE, actor=principal, target=_target(user), changes=diff,
                                   session=s)
            if changes.password is not None or changes.disabled:
                self._end_access(repo, principal, user, changes, session=s)
            return user

    def _end_access(self, repo: AccountRepository, principal: Principal | None, user: User, changes: UserChanges,
                    *, session) -> None:
        """After a password change or disabling: end the user's sessions (not the one changing its own password)
        and, when asked, delete their API keys."""
        own = principal is not None and principal.user_id == user.id
        keep = principal.credential_id if own and principal.credential is CredentialKind.SESSION else None
        if changes.disabled:
            keep = None
        sessions = repo.revoke_user_sessions(user.id, now=self._clock(), keep=keep)
        keys = repo.delete_user_api_keys(user.id) if changes.revoke_api_keys else 0
        if changes.password is not None:
            self._audit.record(
                AuditAction.USER_PASSWORD, actor=principal, target=_target(user), session=session,
                changes={"password": {"changed": True}},
                details={"by": "self" if own else ("operator" if principal is None else "admin"),
                         "sessions_revoked": sessions, "api_keys_revoked": keys},
            )

    def _check_current_password(self, principal: Principal, password: str | None) -> None:
        """Changing one's own password needs the current one; wrong ones count as failed logins."""
        username = principal.user.username
        if password is None:
            raise InvalidInput("current_password is required to change your own password", field="current_password")
        self._limiter.check(username=username, address=principal.address)
        with self._db.session(write_lock=False) as s:
            stored = AccountRepository(s).get_credentials(username)
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
        with self._db.session(write_lock=True) as s:
            repo = AccountRepository(s)
            target = self._current(repo, target)
            if principal is not None:
                authorize_over(principal, _held(repo, target), target=f"user {target.username!r}")
            if ADMIN_ROLE in target.roles and not target.disabled and repo.users_with_role(ADMIN_ROLE) <= 1:
                raise Conflict("cannot delete the last active admin")
            prefixes = user_object_prefixes(target.id, UserDataRepository(s).owned_ids(target.id))
            repo.delete_user(target.id)
            self._audit.record(AuditAction.USER_DELETE, actor=principal, target=_target(target),
                               changes=field_changes(_audited(target), {}),
                               details={"object_prefixes": len(prefixes)}, session=s)
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

    @staticmethod
    def _current(repo: AccountRepository, target: User) -> User:
        """Re-read the target inside the write transaction, so the checks see what will be changed."""
        current = repo.get_user(target.id)
        if current is None:
            raise NotFound(f"user {target.username!r} not found")
        return current

    def reset_password(self, username: str, password: str) -> User:
        """Operator path (CLI): set a new password and end the user's sessions."""
        return self.update(None, username, UserChanges(password=password))

    def ensure_admin(self, *, username: str, password: str) -> User | None:
        """Create the super admin when there are no users at all; returns it, or None if users exist."""
        with self._db.session() as s:
            if AccountRepository(s).count_users() > 0:
                return None
        return self.create(None, username=username, password=password, roles=[ADMIN_ROLE])


