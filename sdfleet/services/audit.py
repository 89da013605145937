"""The audit log: one `record` call per change, and the admin's filtered, paged view of it.

A change and its event that must commit together: the service builds the event with `event` and gives it to the
store method making the change, which appends it in its transaction (docs/decisions.md, "Services reach the store
one way"):

    event = self._audit.event(AuditAction.MODEL_DELETE, actor=principal, target=AuditTarget("model", c.id, c.name))
    self.store.delete(c, event=event)

An event on its own (a failed login): `record`, outside any transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sdfleet.domain.accounts import Principal, User
from sdfleet.domain.audit import SECRET_FIELDS, AuditAction, AuditEvent, AuditQuery, AuditTarget, without_secrets
from sdfleet.domain.errors import InvalidInput
from sdfleet.domain.ids import new_id
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.services.authorization import authorize_every
from sdfleet.store.audit import SqlAuditLog

MAX_FILTER_LENGTH = 255


class AuditStore(Protocol):
    """Where events are appended (`SqlAuditLog`, or `MemoryAuditLog` in tests)."""

    def append(self, event: AuditEvent) -> None: ...

    def list(self, query: AuditQuery, page: PageRequest) -> Page[AuditEvent]: ...


class AuditLog:
    """Appends audit events; lists them to holders of every permission (the admin role)."""

    def __init__(self, *, store: AuditStore | SqlAuditLog, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def record(self, action: AuditAction, **fields: Any) -> AuditEvent:
        """Append `event(action, **fields)` (same arguments) when the change has already committed."""
        event = self.event(action, **fields)
        self._store.append(event)
        return event

    def event(
        self,
        action: AuditAction,
        *,
        actor: Principal | User | None,
        target: AuditTarget,
        changes: Mapping[str, Mapping[str, Any]] | None = None,
        details: Mapping[str, Any] | None = None,
        address: str | None = None,
        actor_name: str | None = None,
    ) -> AuditEvent:
        """One event, not appended (a store method appends it in the change's transaction). `actor` is the
        principal, a `User` who just proved their password (a login), or None: the operator (CLI) or, with
        `actor_name`, an unauthenticated caller (a failed login). `address` defaults to the principal's.
        Secret-named fields never reach the log."""
        user = actor.user if isinstance(actor, Principal) else actor
        if isinstance(actor, Principal):
            credential, address = actor.credential.value, address if address is not None else actor.address
        else:
            credential = "password" if actor is not None else None
        event = AuditEvent(
            id=new_id(),
            at=self._clock(),
            action=AuditAction(action),
            target=target,
            actor_id=user.id if user is not None else None,
            actor_name=user.username if user is not None else actor_name,
            credential=credential,
            address=address,
            changes={name: ({"changed": True} if name in SECRET_FIELDS else dict(without_secrets(change)))
                     for name, change in (changes or {}).items()},
            details=without_secrets(dict(details or {})),
        )
        return event

    def list(self, principal: Principal, query: AuditQuery, page: PageRequest) -> Page[AuditEvent]:
        """Events newest first, filtered; only for a principal holding every permission."""
        authorize_every(principal)
        for name in ("actor", "action", "target_kind", "target"):
            value = getattr(query, name)
            if value is not None and (len(value) > MAX_FILTER_LENGTH or not value.isprintable()):
                raise InvalidInput(f"{name} must be at most {MAX_FILTER_LENGTH} printable characters", field=name)
        if query.action is not None and not query.action.endswith("."):
            known = {a.value for a in AuditAction}
            if query.action not in known:
                raise InvalidInput(
                    f"action must be one of {', '.join(sorted(known))}, or a prefix such as 'user.'; "
                    f"got {query.action!r}", field="action")
        for name in ("since", "until"):
            value = getattr(query, name)
            if value is not None and value.tzinfo is None:
                raise InvalidInput(f"{name} must include a timezone, e.g. 2030-01-01T00:00:00Z", field=name)
        return self._store.list(query, page)
