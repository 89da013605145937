"""Users, roles, sessions, API keys and the authenticated principal."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from sdfleet.domain.permissions import Permission


@dataclass(frozen=True)
class Role:
    """A named set of permissions."""

    name: str
    permissions: frozenset[Permission]
    description: str = ""
    builtin: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class User:
    """An account; `roles` are role names. The password hash never leaves the store layer."""

    id: str
    username: str
    roles: tuple[str, ...]
    email: str | None = None
    disabled: bool = False
    created_at: datetime | None = None


class CredentialKind(enum.StrEnum):
    """How the caller authenticated."""

    SESSION = "session"  #: a login session token (Bearer or cookie)
    API_KEY = "api_key"  #: a personal API key
    WORKER = "worker"  #: a worker token (no user)


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do, resolved once per request."""

    user: User
    permissions: frozenset[Permission]
    credential: CredentialKind
    credential_id: str
    #: the client address the request came from (after trusted proxies), for the audit log
    address: str | None = None

    @property
    def user_id(self) -> str:
        return self.user.id

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class ApiKey:
    """A personal API key as listed: never the secret, only its visible prefix."""

    id: str
    user_id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class IssuedSecret:
    """A freshly created token or key: the plain secret is shown exactly once."""

    secret: str
    expires_at: datetime | None
    record: ApiKey | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LoginFailureCounts:
    """Failed logins within the limiter's window, seen from one attempt (username, client address)."""

    pair: int  #: of this username from this address
    pair_oldest: datetime | None
    address: int  #: from this address, any username
    address_oldest: datetime | None
    user: int  #: of this username, from every address
    user_latest: datetime | None
