"""Schemas of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from sdfleet.domain.audit import AuditEvent


class AuditTargetPublic(BaseModel):
    kind: str
    id: str | None
    name: str | None


class AuditEventPublic(BaseModel):
    id: str
    at: datetime
    action: str
    actor_id: str | None
    actor_name: str | None
    credential: str | None
    address: str | None
    target: AuditTargetPublic
    changes: dict[str, dict[str, Any]]
    details: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventPublic:
        return cls(
            id=event.id, at=event.at, action=event.action.value, actor_id=event.actor_id,
            actor_name=event.actor_name, credential=event.credential, address=event.address,
            target=AuditTargetPublic(kind=event.target.kind, id=event.target.id, name=event.target.name),
            changes=event.changes, details=event.details,
        )
