"""Schemas for auth, users, roles and API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictBool, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.domain.accounts import ApiKey, Principal, Role, User


class LoginRequest(Strict):
    username: StrictStr = Field(max_length=64)
    password: StrictStr = Field(max_length=256)


class UserPublic(BaseModel):
    id: str
    username: str
    roles: list[str]
    email: str | None
    disabled: bool
    created_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id, username=user.username, roles=list(user.roles), email=user.email,
            disabled=user.disabled, created_at=user.created_at,
        )


class MePublic(UserPublic):
    permissions: list[str]
    credential: str

    @classmethod
    def of_principal(cls, principal: Principal) -> MePublic:
        base = UserPublic.of(principal.user).model_dump()
        return cls(**base, permissions=sorted(p.value for p in principal.permissions),
                   credential=principal.credential.value)


class LoginResponse(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: MePublic


class UserCreate(Strict):
    username: StrictStr = Field(max_length=64)
    password: StrictStr = Field(max_length=256)
    roles: list[StrictStr] = Field(default_factory=list, max_length=32)
    email: StrictStr | None = Field(default=None, max_length=254)


class UserUpdate(Strict):
    roles: list[StrictStr] | None = Field(default=None, max_length=32)
    email: StrictStr | None = Field(default=None, max_length=254)
    disabled: StrictBool | None = None
    password: StrictStr | None = Field(default=None, max_length=256)
    current_password: StrictStr | None = Field(
        default=None, max_length=256, description="Your current password: required to change your own password.")
    revoke_api_keys: StrictBool = Field(
        default=False, description="With a password change: also delete every API key of the user.")


class RolePublic(BaseModel):
    name: str
    permissions: list[str]
    description: str
    builtin: bool
    created_at: datetime | None

    @classmethod
    def of(cls, role: Role) -> RolePublic:
        return cls(
            name=role.name, permissions=sorted(p.value for p in role.permissions),
            description=role.description, builtin=role.builtin, created_at=role.created_at,
        )


class RoleCreate(Strict):
    name: StrictStr = Field(max_length=64)
    permissions: list[StrictStr] = Field(default_factory=list, max_length=32)
    description: StrictStr = Field(default="", max_length=500)


class RoleUpdate(Strict):
    permissions: list[StrictStr] | None = Field(default=None, max_length=32)
    description: StrictStr | None = Field(default=None, max_length=500)


class PermissionPublic(BaseModel):
    name: str
    description: str


class ApiKeyCreate(Strict):
    name: StrictStr = Field(max_length=100)
    expires_at: datetime | None = None


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyPublic:
        return cls(
            id=key.id, name=key.name, prefix=key.prefix, created_at=key.created_at,
            expires_at=key.expires_at, last_used_at=key.last_used_at,
        )


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The secret key. Shown only in this answer; store it now.")
