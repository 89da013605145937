"""Login, logout, bearer-token authentication and personal API keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sdfleet.domain.accounts import ApiKey, CredentialKind, IssuedSecret, Principal, User
from sdfleet.domain.audit import AuditAction, AuditTarget, field_changes
from sdfleet.domain.errors import InvalidInput, NotFound, Unauthenticated
from sdfleet.domain.ids import is_valid_id, new_id
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.validation import check_label, is_storable, is_valid_username
from sdfleet.services.audit import AuditLog
from sdfleet.services.credentials import (
    API_KEY_PREFIX,
    SESSION_PREFIX,
    PasswordHasher,
    new_token,
    token_hash,
    visible_prefix,
)
from sdfleet.services.login_limiter import LoginLimiter
from sdfleet.store.accounts import Holder, SqlAccounts, StoredSession

_TOUCH_INTERVAL = timedelta(minutes=1)
MAX_API_KEY_LIFETIME = timedelta(days=3650)


@dataclass(frozen=True)
class LoginPolicy:
    """How long sessions last."""

    session_ttl: timedelta


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _check_holder(holder: Holder | None) -> None:
    """A credential of a deleted or disabled user authenticates nobody."""
    if holder is None or holder.user.disabled:
        raise Unauthenticated("invalid or expired credentials")


def _principal(holder: Holder, kind: CredentialKind, credential_id: str) -> Principal:
    return Principal(user=holder.user, permissions=holder.permissions, credential=kind, credential_id=credential_id)


class AuthService:
    """Turns credentials into principals; issues and revokes sessions and API keys."""

    def __init__(
        self,
        *,
        accounts: SqlAccounts,
        hasher: PasswordHasher,
        policy: LoginPolicy,
        limiter: LoginLimiter,
        audit: AuditLog,
        clock: Callable[[], datetime],
    ) -> None:
        self._accounts = accounts
        self._hasher = hasher
        self._policy = policy
        self._limiter = limiter
        self._audit = audit
        self._clock = clock

    # Sessions
    def login(self, *, username: str, password: str, client_address: str | None) -> IssuedSecret:
        """Check a password and open a session; failures are limited per client, address and username."""
        self._limiter.check(username=username, address=client_address)
        stored = None
        if is_valid_username(username) and is_storable(password):
            stored = self._accounts.credentials(username)
        ok = is_storable(password) and self._hasher.verify(stored.password_hash if stored else None, password)
        if not ok or stored is None or stored.user.disabled:
            self._limiter.failed(username=username, address=client_address)
            # The attempted name is kept only when it names a user: a password typed into the username
            # field must not land in the audit log.
            reason = "disabled" if ok and stored is not None else "wrong_credentials"
            self._audit.record(
                AuditAction.LOGIN_FAILED, actor=None, actor_name=stored.user.username if stored else None,
                address=client_address, details={"reason": reason if stored else "unknown_user"},
                target=AuditTarget("user", stored.user.id, stored.user.username) if stored else AuditTarget("user"))
            raise Unauthenticated("wrong username or password")
        self._limiter.succeeded(username=username, address=client_address)
        token = new_token(SESSION_PREFIX)
        now = self._clock()
        expires = now + self._policy.session_ttl
        user = stored.user
        session_id = new_id()
        self._accounts.add_session(
            session_id=session_id,
            token_hash=token_hash(token),
            user_id=user.id,
            now=now,
            expires_at=expires,
            client=(client_address or "")[:255] or None,
            event=self._audit.event(AuditAction.LOGIN, actor=user, address=client_address,
                                    target=AuditTarget("user", user.id, user.username),
                                    details={"session_id": session_id}),
        )
        return IssuedSecret(secret=token, expires_at=expires)

    def logout(self, principal: Principal) -> None:
        """Revoke the session the principal used (an API key is not revoked by logout)."""
        if principal.credential is CredentialKind.SESSION:
            self._accounts.revoke_session(principal.credential_id, now=self._clock(), event=self._audit.event(
                AuditAction.LOGOUT, actor=principal,
                target=AuditTarget("user", principal.user_id, principal.user.username)))

    def authenticate(self, token: str) -> Principal:
        """Resolve a bearer token (session token or API key) to a principal, or raise Unauthenticated."""
        if token.startswith(SESSION_PREFIX):
            return self._from_session(token)
        if token.startswith(API_KEY_PREFIX):
            return self._from_api_key(token)
        raise Unauthenticated("invalid or expired credentials")

    def _from_session(self, token: str) -> Principal:
        now = self._clock()

        def check(stored: StoredSession | None, holder: Holder | None) -> None:
            if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
                raise Unauthenticated("invalid or expired credentials")
            _check_holder(holder)

        stored, holder = self._accounts.session_holder(token_hash(token), check=check)
        return _principal(holder, CredentialKind.SESSION, stored.id)

    def _from_api_key(self, token: str) -> Principal:
        now = self._clock()

        def check(key: ApiKey | None, holder: Holder | None) -> None:
            if key is None or (key.expires_at is not None and key.expires_at <= now):
                raise Unauthenticated("invalid or expired credentials")
            _check_holder(holder)

        key, holder = self._accounts.api_key_holder(token_hash(token), now=now, check=check,
                                                    touch_after=_TOUCH_INTERVAL)
        return _principal(holder, CredentialKind.API_KEY, key.id)

    # API keys
    def create_api_key(self, principal: Principal, *, name: str, expires_at: datetime | None) -> IssuedSecret:
        """Create a personal API key; the plain key is returned once and stored only as a hash."""
        name = check_label(name, field="name")
        now = self._clock()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidInput("expires_at must include a timezone, e.g. 2030-01-01T00:00:00Z", field="expires_at")
            if expires_at <= now:
                raise InvalidInput("expires_at must be in the future", field="expires_at")
            if expires_at > now + MAX_API_KEY_LIFETIME:
                raise InvalidInput("expires_at must be within 10 years", field="expires_at")
        token = new_token(API_KEY_PREFIX)
        record = ApiKey(
            id=new_id(),
            user_id=principal.user_id,
            name=name,
            prefix=visible_prefix(token),
            created_at=now,
            expires_at=expires_at,
        )
        record = self._accounts.add_api_key(record, key_hash=token_hash(token), event=self._audit.event(
            AuditAction.API_KEY_CREATE, actor=principal, target=AuditTarget("api_key", record.id, record.name),
            changes=field_changes({}, {"name": record.name, "prefix": record.prefix,
                                       "expires_at": _iso(record.expires_at)})))
        return IssuedSecret(secret=token, expires_at=expires_at, record=record)

    def list_api_keys(self, principal: Principal, page: PageRequest) -> Page[ApiKey]:
        """The caller's own API keys (never the secrets)."""
        return self._accounts.list_api_keys(principal.user_id, page)

    def delete_api_key(self, principal: Principal, key_id: str) -> None:
        """Revoke one of the caller's keys; another user's key is not found."""
        deleted = self._accounts.delete_api_key(
            key_id, user_id=principal.user_id,
            audit=lambda key: self._audit.event(AuditAction.API_KEY_DELETE, actor=principal,
                                                target=AuditTarget("api_key", key.id, key.name),
                                                details={"prefix": key.prefix})) if is_valid_id(key_id) else None
        if deleted is None:
            raise NotFound(f"API key {key_id!r} not found")

    def me(self, principal: Principal) -> User:
        """The caller's own record."""
        return principal.user
