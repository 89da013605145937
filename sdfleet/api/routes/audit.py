"""/api/v1/audit: the append-only audit log (holders of every permission, i.e. the admin role)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.audit import AuditEventPublic
from sdfleet.api.schemas.base import ListPage
from sdfleet.domain.audit import AuditQuery

router = APIRouter(prefix="/audit", tags=["audit"])

Filter = Annotated[str | None, Query(max_length=255)]


@router.get("", response_model=ListPage[AuditEventPublic])
def list_audit_events(
    principal: CurrentPrincipal,
    services: ServicesDep,
    page: PageDep,
    actor: Annotated[str | None, Query(max_length=64, description="Username of the actor.")] = None,
    action: Annotated[str | None, Query(max_length=64, description="An action (`user.update`) or a prefix "
                                                                     "ending in a dot (`user.`).")] = None,
    target_kind: Annotated[str | None, Query(max_length=32, description="user, role, api_key, model, "
                                                                          "workflow, endpoint …")] = None,
    target: Annotated[str | None, Query(max_length=255, description="The target's id or name.")] = None,
    since: Annotated[datetime | None, Query(description="Events at or after (with a timezone).")] = None,
    until: Annotated[datetime | None, Query(description="Events before (with a timezone).")] = None,
) -> ListPage[AuditEventPublic]:
    """Audit events, newest first: logins, account, role, key, model, workflow and endpoint changes."""
    query = AuditQuery(actor=actor, action=action, target_kind=target_kind, target=target, since=since, until=until)
    result = services.audit.list(principal, query, page)
    return ListPage(items=[AuditEventPublic.of(e) for e in result.items], next_cursor=result.next_cursor)
