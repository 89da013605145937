"""The audit log table: appended, listed newest first, never updated or deleted (triggers refuse it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from sdfleet.domain.audit import AuditAction, AuditEvent, AuditQuery, AuditTarget
from sdfleet.domain.errors import InvalidInput
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.store.database import Database
from sdfleet.store.records import record_of
from sdfleet.store.tables import AuditEventRow


def _event(row: AuditEventRow) -> AuditEvent:
    return record_of(AuditEvent, row, action=AuditAction(row.action),
                     target=AuditTarget(kind=row.target_kind, id=row.target_id, name=row.target_name),
                     changes=dict(row.changes or {}), details=dict(row.details or {}))


def _cursor_key(event: AuditEvent) -> list:
    return [event.at.isoformat(), event.id]


def _cursor(page: PageRequest) -> tuple[datetime, str]:
    """(at, id) of the last event of the previous page; newest first, so the next page is strictly older."""
    try:
        at, last_id = page.after
        return datetime.fromisoformat(str(at)), str(last_id)
    except (ValueError, TypeError):
        raise InvalidInput("cursor is not a cursor this server issued", field="cursor") from None


def _clip(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


class SqlAuditLog:
    """Audit events in `audit_events`; `append` joins the caller's transaction when given one."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def append(self, event: AuditEvent, *, session: Session | None = None) -> None:
        """Add one event (in `session`, so it commits or rolls back with the change it records)."""
        row = AuditEventRow(
            id=event.id, at=event.at, action=event.action.value,
            actor_id=event.actor_id, actor_name=_clip(event.actor_name, 64), credential=event.credential,
            address=_clip(event.address, 64), target_kind=event.target.kind, target_id=_clip(event.target.id, 64),
            target_name=_clip(event.target.name, 255), changes=event.changes, details=event.details,
        )
        if session is not None:
            session.add(row)
            session.flush()
            return
        with self._db.session(write_lock=True) as s:
            s.add(row)

    def list(self, query: AuditQuery, page: PageRequest) -> Page[AuditEvent]:
        """Events matching `query`, newest first."""
        row = AuditEventRow
        stmt = select(row).order_by(row.at.desc(), row.id.desc()).limit(page.limit + 1)
        if page.after:
            at, last_id = _cursor(page)
            stmt = stmt.where((row.at < at) | ((row.at == at) & (row.id < last_id)))
        if query.actor is not None:
            stmt = stmt.where(AuditEventRow.actor_name == query.actor)
        if query.action is not None:
            if query.action.endswith("."):
                stmt = stmt.where(AuditEventRow.action.startswith(query.action, autoescape=True))
            else:
                stmt = stmt.where(AuditEventRow.action == query.action)
        if query.target_kind is not None:
            stmt = stmt.where(AuditEventRow.target_kind == query.target_kind)
        if query.target is not None:
            stmt = stmt.where((AuditEventRow.target_id == query.target) | (AuditEventRow.target_name == query.target))
        if query.since is not None:
            stmt = stmt.where(AuditEventRow.at >= query.since)
        if query.until is not None:
            stmt = stmt.where(AuditEventRow.at < query.until)
        with self._db.session(write_lock=False) as s:
            rows = [_event(r) for r in s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=_cursor_key)


class MemoryAuditLog:
    """The same contract in memory, for unit tests."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        """Add one event."""
        self.events.append(event)

    def list(self, query: AuditQuery, page: PageRequest) -> Page[AuditEvent]:
        """Events matching `query`, newest first."""

        after = _cursor(page) if page.after else None

        def matches(e: AuditEvent) -> bool:
            action = query.action
            return ((after is None or (e.at, e.id) < after)
                    and (query.actor is None or e.actor_name == query.actor)
                    and (action is None or (e.action.startswith(action) if action.endswith(".") else e.action == action))
                    and (query.target_kind is None or e.target.kind == query.target_kind)
                    and (query.target is None or query.target in (e.target.id, e.target.name))
                    and (query.since is None or e.at >= query.since)
                    and (query.until is None or e.at < query.until))

        rows = sorted((e for e in self.events if matches(e)), key=lambda e: (e.at, e.id), reverse=True)
        return page_from_rows(rows[: page.limit + 1], limit=page.limit, key=_cursor_key)
