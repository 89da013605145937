"""Accounts: roles, users, login sessions and API keys — the repository (inside a caller's transaction) and
`SqlAccounts`, the services' store (one transaction a method)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from sdfleet.domain.accounts import ApiKey, Role, User
from sdfleet.domain.audit import AuditEvent
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.domain.permissions import Permission
from sdfleet.store.audit import SqlAuditLog
from sdfleet.store.database import Database
from sdfleet.store.records import record_of
from sdfleet.store.tables import ApiKeyRow, AuthSessionRow, RoleRow, UserRoleRow, UserRow
from sdfleet.store.user_data import OwnedIds, UserDataRepository


@dataclass(frozen=True)
class StoredCredentials:
    """A user with their password hash, for the login check only."""

    user: User
    password_hash: str


@dataclass(frozen=True)
class StoredSession:
    """A login session as stored (the token itself is never stored)."""

    id: str
    user_id: str
    expires_at: datetime
    revoked_at: datetime | None


def _role(row: RoleRow) -> Role:
    return record_of(Role, row, permissions=frozenset(Permission(p) for p in row.permissions))


def _user(row: UserRow) -> User:
    return record_of(User, row, roles=tuple(link.role_name for link in row.role_links))


def _api_key(row: ApiKeyRow) -> ApiKey:
    return record_of(ApiKey, row)


class AccountRepository:
    """SQL access for accounts; every method runs inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._s = session

    # Roles
    def get_role(self, name: str) -> Role | None:
        row = self._s.get(RoleRow, name)
        return _role(row) if row else None

    def get_roles(self, names: list[str]) -> list[Role]:
        rows = self._s.scalars(select(RoleRow).where(RoleRow.name.in_(names))).all()
        return [_role(r) for r in rows]

    def list_roles(self, page: PageRequest) -> Page[Role]:
        stmt = select(RoleRow).order_by(RoleRow.name).limit(page.limit + 1)
        if page.after:
            stmt = stmt.where(RoleRow.name > str(page.after[0]))
        rows = [_role(r) for r in self._s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda r: [r.name])

    def add_role(self, role: Role) -> Role:
        row = RoleRow(
            name=role.name,
            description=role.description,
            permissions=sorted(p.value for p in role.permissions),
            builtin=role.builtin,
            created_at=role.created_at,
        )
        self._s.add(row)
        self._s.flush()
        return _role(row)

    def update_role(self, name: str, *, permissions: frozenset[Permission] | None, description: str | None) -> Role:
        row = self._s.get(RoleRow, name)
        if permissions is not None:
            row.permissions = sorted(p.value for p in permissions)
        if description is not None:
            row.description = description
        self._s.flush()
        return _role(row)

    def delete_role(self, name: str) -> None:
        self._s.execute(delete(UserRoleRow).where(UserRoleRow.role_name == name))
        self._s.execute(delete(RoleRow).where(RoleRow.name == name))

    def users_with_role(self, name: str) -> int:
        stmt = (
            select(func.count())
            .select_from(UserRoleRow)
            .join(UserRow, UserRow.id == UserRoleRow.user_id)
            .where(UserRoleRow.role_name == name, UserRow.disabled.is_(False))
        )
        return self._s.scalar(stmt) or 0

    # Users
    def count_users(self) -> int:
        return self._s.scalar(select(func.count()).select_from(UserRow)) or 0

    def get_user(self, user_id: str) -> User | None:
        row = self._s.get(UserRow, user_id)
        return _user(row) if row else None

    def get_user_by_username(self, username: str) -> User | None:
        row = self._s.scalar(select(UserRow).where(UserRow.username == username))
        return _user(row) if row else None

    def get_credentials(self, username: str) -> StoredCredentials | None:
        row = self._s.scalar(select(UserRow).where(UserRow.username == username))
        return StoredCredentials(user=_user(row), password_hash=row.password_hash) if row else None

    def list_users(self, page: PageRequest) -> Page[User]:
        stmt = select(UserRow).order_by(UserRow.username).limit(page.limit + 1)
        if page.after:
            stmt = stmt.where(UserRow.username > str(page.after[0]))
        rows = [_user(r) for r in self._s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda u: [u.username])

    def add_user(self, user: User, *, password_hash: str, now: datetime) -> User:
        row = UserRow(
            id=user.id,
            username=user.username,
            password_hash=password_hash,
            email=user.email,
            disabled=user.disabled,
            created_at=now,
            updated_at=now,
        )
        row.role_links = [UserRoleRow(role_name=r) for r in user.roles]
        self._s.add(row)
        self._s.flush()
        return _user(row)

    def update_user(
        self,
        user_id: str,
        *,
        now: datetime,
        roles: list[str] | None = None,
        email: str | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
    ) -> User:
        row = self._s.get(UserRow, user_id)
        if roles is not None:
            keep = {link.role_name: link for link in row.role_links}
            row.role_links = [keep.get(r) or UserRoleRow(role_name=r) for r in sorted(set(roles))]
        if email is not None:
            row.email = email or None
        if disabled is not None:
            row.disabled = disabled
        if password_hash is not None:
            row.password_hash = password_hash
        row.updated_at = now
        self._s.flush()
        self._s.refresh(row)
        return _user(row)

    def delete_user(self, user_id: str) -> None:
        self._s.execute(delete(UserRow).where(UserRow.id == user_id))

    # Sessions
    def add_session(
        self, *, session_id: str, token_hash: str, user_id: str, now: datetime, expires_at: datetime, client: str | None
    ) -> None:
        self._s.add(
            AuthSessionRow(
                id=session_id,
                token_hash=token_hash,
                user_id=user_id,
                created_at=now,
                expires_at=expires_at,
                client=client,
            )
        )

    def find_session(self, token_hash: str) -> StoredSession | None:
        row = self._s.scalar(select(AuthSessionRow).where(AuthSessionRow.token_hash == token_hash))
        if row is None:
            return None
        return StoredSession(id=row.id, user_id=row.user_id, expires_at=row.expires_at, revoked_at=row.revoked_at)

    def revoke_session(self, session_id: str, *, now: datetime) -> None:
        self._s.execute(
            update(AuthSessionRow)
            .where(AuthSessionRow.id == session_id, AuthSessionRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def revoke_user_sessions(self, user_id: str, *, now: datetime, keep: str | None = None) -> int:
        """Revoke every live session of a user except `keep`; how many were revoked."""
        stmt = update(AuthSessionRow).where(AuthSessionRow.user_id == user_id, AuthSessionRow.revoked_at.is_(None))
        if keep is not None:
            stmt = stmt.where(AuthSessionRow.id != keep)
        return self._s.execute(stmt.values(revoked_at=now)).rowcount or 0

    def purge_sessions(self, *, before: datetime) -> int:
        result = self._s.execute(delete(AuthSessionRow).where(AuthSessionRow.expires_at < before))
        return result.rowcount or 0

    # API keys
    def add_api_key(self, key: ApiKey, *, key_hash: str) -> ApiKey:
        row = ApiKeyRow(
            id=key.id,
            user_id=key.user_id,
            name=key.name,
            prefix=key.prefix,
            key_hash=key_hash,
            created_at=key.created_at,
            expires_at=key.expires_at,
        )
        self._s.add(row)
        self._s.flush()
        return _api_key(row)

    def list_api_keys(self, user_id: str, page: PageRequest) -> Page[ApiKey]:
        stmt = select(ApiKeyRow).where(ApiKeyRow.user_id == user_id).order_by(ApiKeyRow.id).limit(page.limit + 1)
        if page.after:
            stmt = stmt.where(ApiKeyRow.id > str(page.after[0]))
        rows = [_api_key(r) for r in self._s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda k: [k.id])

    def get_api_key(self, key_id: str) -> ApiKey | None:
        row = self._s.get(ApiKeyRow, key_id)
        return _api_key(row) if row else None

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = self._s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash))
        return _api_key(row) if row else None

    def touch_api_key(self, key_id: str, *, now: datetime) -> None:
        self._s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now))

    def delete_api_key(self, key_id: str) -> None:
        self._s.execute(delete(ApiKeyRow).where(ApiKeyRow.id == key_id))

    def delete_user_api_keys(self, user_id: str) -> int:
        """Delete every API key of a user; how many there were."""
        return self._s.execute(delete(ApiKeyRow).where(ApiKeyRow.user_id == user_id)).rowcount or 0


@dataclass(frozen=True)
class Holder:
    """A user with every permission their roles give."""

    user: User
    permissions: frozenset[Permission]


@dataclass(frozen=True)
class UserWrite:
    """What an update writes to a user (None leaves a field) and, after a password change or disabling, whose
    access ends: every session but `keep_session`, and every API key with `delete_api_keys`."""

    roles: list[str] | None = None
    email: str | None = None
    disabled: bool | None = None
    password_hash: str | None = None
    end_sessions: bool = False
    keep_session: str | None = None
    delete_api_keys: bool = False


@dataclass(frozen=True)
class AccessEnded:
    """How many sessions were revoked and API keys deleted by an update."""

    sessions: int
    api_keys: int


class AccountReads:
    """What a service's check may read inside the store's transaction (and nothing else)."""

    def __init__(self, repo: AccountRepository) -> None:
        self._repo = repo

    def roles(self, names: list[str]) -> list[Role]:
        """The roles of these names that exist."""
        return self._repo.get_roles(names)

    def active_users_with_role(self, name: str) -> int:
        """How many users who are not disabled hold the role."""
        return self._repo.users_with_role(name)


def _holder(repo: AccountRepository, user_id: str) -> Holder | None:
    user = repo.get_user(user_id)
    if user is None:
        return None
    return Holder(user=user, permissions=frozenset().union(*(r.permissions for r in repo.get_roles(list(user.roles)))))


class SqlAccounts:
    """Roles, users, login sessions and API keys for the services: every method is one transaction.

    A change that is audited takes its event (or a function building it from what was written) and appends it in
    the same transaction. A `check` runs inside the transaction, before anything is written, and raises to abort
    it: the decision sees exactly what will be changed."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._audit = SqlAuditLog(database)

    def _append(self, s: Session, event: AuditEvent | None) -> None:
        if event is not None:
            self._audit.append(event, session=s)

    # Roles
    def ensure_roles(self, roles: list[Role], *, synced: frozenset[str] = frozenset()) -> None:
        """Add the roles that do not exist; for the names in `synced`, also set the permissions given."""
        with self._db.session(write_lock=True) as s:
            repo = AccountRepository(s)
            for role in roles:
                existing = repo.get_role(role.name)
                if existing is None:
                    repo.add_role(role)
                elif role.name in synced and existing.permissions != role.permissions:
                    repo.update_role(role.name, permissions=role.permissions, description=None)

    def list_roles(self, page: PageRequest) -> Page[Role]:
        with self._db.session() as s:
            return AccountRepository(s).list_roles(page)

    def get_role(self, name: str) -> Role | None:
        with self._db.session() as s:
            return AccountRepository(s).get_role(name)

    def get_roles(self, names: list[str]) -> list[Role]:
        with self._db.session() as s:
            return AccountRepository(s).get_roles(names)

    def add_role(self, role: Role, *, event: AuditEvent) -> Role | None:
        """Add a role and its audit event; None (nothing written) when a role has the name."""
        with self._db.session(write_lock=True) as s:
            repo = AccountRepository(s)
            if repo.get_role(role.name) is not None:
                return None
            added = repo.add_role(role)
            self._append(s, event)
            return added

    def update_role(self, name: str, *, permissions: frozenset[Permission] | None, description: str | None,
                    audit: Callable[[Role], AuditEvent | None]) -> Role:
        """Change a role; `audit(updated)` gives the event to append (None: none)."""
        with self._db.session(write_lock=True) as s:
            updated = AccountRepository(s).update_role(name, permissions=permissions, description=description)
            self._append(s, audit(updated))
            return updated

    def delete_role(self, name: str, *, event: AuditEvent) -> None:
        """Delete a role (its users lose it) and append its audit event."""
        with self._db.session(write_lock=True) as s:
            AccountRepository(s).delete_role(name)
            self._append(s, event)

    # Users
    def count_users(self) -> int:
        with self._db.session() as s:
            return AccountRepository(s).count_users()

    def list_users(self, page: PageRequest) -> Page[User]:
        with self._db.session() as s:
            return AccountRepository(s).list_users(page)

    def get_user_by_username(self, username: str) -> User | None:
        with self._db.session() as s:
            return AccountRepository(s).get_user_by_username(username)

    def credentials(self, username: str, *, write_lock: bool | None = None) -> StoredCredentials | None:
        with self._db.session(write_lock=write_lock) as s:
            return AccountRepository(s).get_credentials(username)

    def add_user(self, user: User, *, password_hash: str, now: datetime, check: Callable[[list[Role]], None],
                 audit: Callable[[User], AuditEvent]) -> User | None:
        """Add a user and its audit event; `check(roles)` sees the existing roles the user is given. None (nothing
        written) when a user has the name."""
        with self._db.session() as s:
            repo = AccountRepository(s)
            check(repo.get_roles(list(user.roles)))
            if repo.get_user_by_username(user.username) is not None:
                return None
            added = repo.add_user(user, password_hash=password_hash, now=now)
            self._append(s, audit(added))
            return added

    def update_user(self, user_id: str, *, now: datetime, decide: Callable[[User, AccountReads], UserWrite],
                    audit: Callable[[User, User, AccessEnded | None], list[AuditEvent]]) -> User | None:
        """Update a user under the write lock: `decide(current, reads)` gives what to write (or raises);
        `audit(before, after, ended)` the events to append. None when the user is gone."""
        with self._db.session(write_lock=True) as s:
            repo = AccountRepository(s)
            current = repo.get_user(user_id)
            if current is None:
                return None
            write = decide(current, AccountReads(repo))
            user = repo.update_user(user_id, now=now, roles=write.roles, email=write.email, disabled=write.disabled,
                                    password_hash=write.password_hash)
            ended = None
            if write.end_sessions:
                sessions = repo.revoke_user_sessions(user_id, now=now, keep=write.keep_session)
                ended = AccessEnded(sessions=sessions,
                                    api_keys=repo.delete_user_api_keys(user_id) if write.delete_api_keys else 0)
            for event in audit(current, user, ended):
                self._append(s, event)
            return user

    def delete_user(self, user_id: str, *, check: Callable[[User, AccountReads], None],
                    audit: Callable[[User, OwnedIds], AuditEvent]) -> tuple[User, OwnedIds] | None:
        """Delete a user under the write lock after `check(current, reads)`; returns them with the ids of what
        they owned (read before the delete), None when they are gone."""
        with self._db.session(write_lock=True) as s:
            repo = AccountRepository(s)
            current = repo.get_user(user_id)
            if current is None:
                return None
            check(current, AccountReads(repo))
            owned = UserDataRepository(s).owned_ids(user_id)
            repo.delete_user(user_id)
            self._append(s, audit(current, owned))
            return current, owned

    # Login sessions
    def add_session(self, *, session_id: str, token_hash: str, user_id: str, now: datetime, expires_at: datetime,
                    client: str | None, event: AuditEvent) -> None:
        """Store a login session and its audit event."""
        with self._db.session() as s:
            AccountRepository(s).add_session(session_id=session_id, token_hash=token_hash, user_id=user_id, now=now,
                                             expires_at=expires_at, client=client)
            self._append(s, event)

    def revoke_session(self, session_id: str, *, now: datetime, event: AuditEvent) -> None:
        """Revoke a login session and append its audit event."""
        with self._db.session() as s:
            AccountRepository(s).revoke_session(session_id, now=now)
            self._append(s, event)

    def session_holder(self, token_hash: str, *, check: Callable[[StoredSession | None, Holder | None], None]
                       ) -> tuple[StoredSession, Holder]:
        """The session of a token hash and its user, read in one transaction; `check(session, holder)` raises when
        they do not authenticate (either may be None)."""
        with self._db.session(write_lock=False) as s:
            repo = AccountRepository(s)
            stored = repo.find_session(token_hash)
            holder = _holder(repo, stored.user_id) if stored is not None else None
            check(stored, holder)
            return stored, holder

    # API keys
    def api_key_holder(self, key_hash: str, *, now: datetime, check: Callable[[ApiKey | None, Holder | None], None],
                       touch_after: timedelta) -> tuple[ApiKey, Holder]:
        """The API key of a hash and its user in one transaction; `check(key, holder)` raises when they do not
        authenticate. A key that does is marked used at `now` when it was last marked over `touch_after` ago."""
        with self._db.session() as s:
            repo = AccountRepository(s)
            key = repo.find_api_key(key_hash)
            holder = _holder(repo, key.user_id) if key is not None else None
            check(key, holder)
            if key.last_used_at is None or now - key.last_used_at > touch_after:
                repo.touch_api_key(key.id, now=now)
            return key, holder

    def add_api_key(self, key: ApiKey, *, key_hash: str, event: AuditEvent) -> ApiKey:
        """Store an API key (its hash) and its audit event."""
        with self._db.session() as s:
            added = AccountRepository(s).add_api_key(key, key_hash=key_hash)
            self._append(s, event)
            return added

    def list_api_keys(self, user_id: str, page: PageRequest) -> Page[ApiKey]:
        with self._db.session() as s:
            return AccountRepository(s).list_api_keys(user_id, page)

    def delete_api_key(self, key_id: str, *, user_id: str, audit: Callable[[ApiKey], AuditEvent]) -> ApiKey | None:
        """Delete one of a user's API keys and append `audit(key)`; None (nothing deleted) when the user has no key
        with that id."""
        with self._db.session() as s:
            repo = AccountRepository(s)
            key = repo.get_api_key(key_id)
            if key is None or key.user_id != user_id:
                return None
            repo.delete_api_key(key_id)
            self._append(s, audit(key))
            return key
