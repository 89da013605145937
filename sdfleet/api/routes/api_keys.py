"""/api/v1/api-keys: personal API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.accounts import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from sdfleet.api.schemas.base import ListPage

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


@router.post("", response_model=ApiKeyCreated, status_code=201)
def create_api_key(body: ApiKeyCreate, principal: CurrentPrincipal, services: ServicesDep) -> ApiKeyCreated:
    """Create a key for yourself; the key is in this answer only."""
    issued = services.auth.create_api_key(principal, name=body.name, expires_at=body.expires_at)
    return ApiKeyCreated(**ApiKeyPublic.of(issued.record).model_dump(), key=issued.secret)


@router.get("", response_model=ListPage[ApiKeyPublic])
def list_api_keys(principal: CurrentPrincipal, services: ServicesDep, page: PageDep) -> ListPage[ApiKeyPublic]:
    """Your keys (prefixes only)."""
    result = services.auth.list_api_keys(principal, page)
    return ListPage(items=[ApiKeyPublic.of(k) for k in result.items], next_cursor=result.next_cursor)


@router.delete("/{key_id}", status_code=204)
def delete_api_key(
    key_id: Annotated[str, Path(max_length=64)], principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    """Revoke one of your keys."""
    services.auth.delete_api_key(principal, key_id)
    return Response(status_code=204)
