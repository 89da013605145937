"""/api/v1/roles and /api/v1/permissions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.accounts import PermissionPublic, RoleCreate, RolePublic, RoleUpdate
from sdfleet.api.schemas.base import ListPage
from sdfleet.domain.permissions import PERMISSION_DESCRIPTIONS

router = APIRouter(tags=["roles"])
RoleName = Annotated[str, Path(max_length=64)]


@router.get("/roles", response_model=ListPage[RolePublic])
def list_roles(principal: CurrentPrincipal, services: ServicesDep, page: PageDep) -> ListPage[RolePublic]:
    """Roles by name."""
    result = services.roles.list(principal, page)
    return ListPage(items=[RolePublic.of(r) for r in result.items], next_cursor=result.next_cursor)


@router.post("/roles", response_model=RolePublic, status_code=201)
def create_role(body: RoleCreate, principal: CurrentPrincipal, services: ServicesDep) -> RolePublic:
    """Create a role (`role:all`; only permissions you hold)."""
    role = services.roles.create(principal, name=body.name, permissions=body.permissions, description=body.description)
    return RolePublic.of(role)


@router.get("/roles/{name}", response_model=RolePublic)
def get_role(name: RoleName, principal: CurrentPrincipal, services: ServicesDep) -> RolePublic:
    """One role."""
    return RolePublic.of(services.roles.get(principal, name))


@router.patch("/roles/{name}", response_model=RolePublic)
def update_role(name: RoleName, body: RoleUpdate, principal: CurrentPrincipal, services: ServicesDep) -> RolePublic:
    """Change a role's permissions or description (`role:all`)."""
    role = services.roles.update(principal, name, permissions=body.permissions, description=body.description)
    return RolePublic.of(role)


@router.delete("/roles/{name}", status_code=204)
def delete_role(name: RoleName, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Delete a role and remove it from its users (`role:all`; not `admin`)."""
    services.roles.delete(principal, name)
    return Response(status_code=204)


@router.get("/permissions", response_model=list[PermissionPublic])
def list_permissions(principal: CurrentPrincipal, services: ServicesDep) -> list[PermissionPublic]:
    """Every permission a role can hold."""
    return [PermissionPublic(name=p.value, description=PERMISSION_DESCRIPTIONS[p]) for p in services.roles.permissions()]
