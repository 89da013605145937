"""/api/v1/endpoints: worker pools with autoscaling; their replicas and the autoscaler's decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.base import ListPage
from sdfleet.api.schemas.endpoints import (
    EndpointCreate,
    EndpointEventPublic,
    EndpointPublic,
    EndpointUpdate,
    ReplicaPublic,
)

router = APIRouter(prefix="/endpoints", tags=["endpoints"])
Name = Annotated[str, Path(max_length=64)]


@router.post("", response_model=EndpointPublic, status_code=201)
def create_endpoint(body: EndpointCreate, principal: CurrentPrincipal, services: ServicesDep) -> EndpointPublic:
    """Create an endpoint (`endpoint:all`); the fleet starts its `min_replicas` and scales with its queue."""
    endpoint = services.endpoints.create(principal, body.name, body.config())
    return EndpointPublic.of(endpoint, [])


@router.get("", response_model=ListPage[EndpointPublic])
def list_endpoints(principal: CurrentPrincipal, services: ServicesDep, page: PageDep) -> ListPage[EndpointPublic]:
    """Endpoints by name: every one for `endpoint:all`; for others, the ones their roles may use."""
    result = services.endpoints.page(principal, page)
    items = [EndpointPublic.of(e, services.endpoints.replicas_of(e.name)) for e in result.items]
    return ListPage(items=items, next_cursor=result.next_cursor)


@router.get("/{name}", response_model=EndpointPublic)
def get_endpoint(name: Name, principal: CurrentPrincipal, services: ServicesDep) -> EndpointPublic:
    """One endpoint with its replicas (status, last heartbeat, loaded models)."""
    endpoint = services.endpoints.get(principal, name)
    return EndpointPublic.of(endpoint, services.endpoints.replicas(principal, name))


@router.patch("/{name}", response_model=EndpointPublic)
def update_endpoint(name: Name, body: EndpointUpdate, principal: CurrentPrincipal,
                    services: ServicesDep) -> EndpointPublic:
    """Change the scaling policy, devices, preloaded models or allowed roles (`endpoint:all`)."""
    endpoint = services.endpoints.update(principal, name, body.change())
    return EndpointPublic.of(endpoint, services.endpoints.replicas(principal, name))


@router.delete("/{name}", response_model=EndpointPublic, status_code=202)
def delete_endpoint(name: Name, principal: CurrentPrincipal, services: ServicesDep,
                    force: Annotated[bool, Query(description="Delete even while jobs run (they finish).")] = False
                    ) -> EndpointPublic:
    """Drain and delete an endpoint (`endpoint:all`); 409 while it runs jobs unless `force`."""
    endpoint = services.endpoints.delete(principal, name, force=force)
    return EndpointPublic.of(endpoint, services.endpoints.replicas(principal, name))


@router.get("/{name}/replicas", response_model=list[ReplicaPublic])
def list_replicas(name: Name, principal: CurrentPrincipal, services: ServicesDep) -> list[ReplicaPublic]:
    """The endpoint's replicas: starting, idle, busy, draining or lost."""
    return [ReplicaPublic.of(r) for r in services.endpoints.replicas(principal, name)]


@router.get("/{name}/events", response_model=ListPage[EndpointEventPublic])
def list_events(name: Name, principal: CurrentPrincipal, services: ServicesDep,
                cursor: Annotated[int, Query(ge=0, description="`next_cursor` of the previous page.")] = 0,
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> ListPage[EndpointEventPublic]:
    """Every autoscaler decision and replica change, oldest first."""
    events = services.endpoints.events(principal, name, after=cursor, limit=limit)
    next_cursor = str(events[-1].seq) if len(events) == limit else None
    return ListPage(items=[EndpointEventPublic.of(e) for e in events], next_cursor=next_cursor)
