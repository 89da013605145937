"""/api/v1/users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.accounts import UserCreate, UserPublic, UserUpdate
from sdfleet.api.schemas.base import ListPage
from sdfleet.services.users import UserChanges

router = APIRouter(prefix="/users", tags=["users"])
Username = Annotated[str, Path(max_length=64)]


@router.get("", response_model=ListPage[UserPublic])
def list_users(principal: CurrentPrincipal, services: ServicesDep, page: PageDep) -> ListPage[UserPublic]:
    """Users by name; without `user:all` only yourself."""
    result = services.users.list(principal, page)
    return ListPage(items=[UserPublic.of(u) for u in result.items], next_cursor=result.next_cursor)


@router.post("", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, principal: CurrentPrincipal, services: ServicesDep) -> UserPublic:
    """Create a user (`user:all`; roles granted must not exceed your own permissions)."""
    user = services.users.create(
        principal, username=body.username, password=body.password, roles=body.roles, email=body.email
    )
    return UserPublic.of(user)


@router.get("/{username}", response_model=UserPublic)
def get_user(username: Username, principal: CurrentPrincipal, services: ServicesDep) -> UserPublic:
    """One user."""
    return UserPublic.of(services.users.get(principal, username))


@router.patch("/{username}", response_model=UserPublic)
def update_user(
    username: Username, body: UserUpdate, principal: CurrentPrincipal, services: ServicesDep
) -> UserPublic:
    """Change roles, e-mail, disabled (`user:all`, only of users holding no permission you lack) or your own
    e-mail and password (with `current_password`). A password change ends the user's other sessions."""
    changes = UserChanges(roles=body.roles, email=body.email, disabled=body.disabled, password=body.password,
                          current_password=body.current_password, revoke_api_keys=body.revoke_api_keys)
    return UserPublic.of(services.users.update(principal, username, changes))


@router.delete("/{username}", status_code=204)
def delete_user(username: Username, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Delete a user (`user:all`; not yourself, not the last admin)."""
    services.users.delete(principal, username)
    return Response(status_code=204)
