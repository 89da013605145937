"""The endpoints table and its event log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from sdfleet.domain.endpoints import Endpoint, EndpointConfig, EndpointEvent, EndpointStatus
from sdfleet.domain.leadership import LeaderFence
from sdfleet.domain.notifications import EventType
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.jobs.records import JobStatus
from sdfleet.store.database import Database
from sdfleet.store.leader_leases import check_fence
from sdfleet.store.outbox import emit
from sdfleet.store.tables import CheckpointRow, EndpointEventRow, EndpointRow, JobRow, RoleRow

MAX_EVENTS_PER_ENDPOINT = 1000
#: endpoint log entries that are also notifications (written in the same transaction)
NOTIFIED_EVENTS = {"replica_restarted": EventType.ENDPOINT_REPLICA_LOST, "failed": EventType.ENDPOINT_FAILED_TO_START}


def _endpoint(row: EndpointRow) -> Endpoint:
    config = EndpointConfig(
        launcher=row.launcher, devices=tuple(row.devices), min_replicas=row.min_replicas,
        max_replicas=row.max_replicas, target_queue_per_replica=row.target_queue_per_replica,
        idle_seconds=row.idle_seconds, preload=tuple(row.preload), allowed_roles=tuple(row.allowed_roles),
        kinds=tuple(row.kinds), resources=dict(row.resources or {}),
    )
    return Endpoint(name=row.name, config=config, status=EndpointStatus(row.status), reason=row.reason,
                    desired_replicas=row.desired_replicas, created_at=row.created_at, updated_at=row.updated_at)


def _apply(row: EndpointRow, config: EndpointConfig) -> None:
    row.launcher = config.launcher
    row.devices = list(config.devices)
    row.min_replicas = config.min_replicas
    row.max_replicas = config.max_replicas
    row.target_queue_per_replica = config.target_queue_per_replica
    row.idle_seconds = float(config.idle_seconds)
    row.preload = list(config.preload)
    row.allowed_roles = list(config.allowed_roles)
    row.kinds = list(config.kinds)
    row.resources = dict(config.resources)


class SqlEndpointStore:
    """Endpoint records and their events; every method is one short transaction."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, name: str, config: EndpointConfig, *, now: datetime) -> Endpoint | None:
        """Insert a `creating` endpoint; None when a live one has the name (a deleted one is replaced)."""
        with self._db.session(write_lock=True) as s:
            existing = s.get(EndpointRow, name, populate_existing=True)
            if existing is not None:
                if existing.status != EndpointStatus.DELETED.value:
                    return None
                s.delete(existing)
                s.execute(delete(EndpointEventRow).where(EndpointEventRow.endpoint == name))
                s.flush()
            row = EndpointRow(name=name, status=EndpointStatus.CREATING.value, reason=None, desired_replicas=0,
                              event_seq=0, created_at=now, updated_at=now)
            _apply(row, config)
            s.add(row)
            s.flush()
            self._event(s, row, "created", {"min_replicas": config.min_replicas,
                                            "max_replicas": config.max_replicas}, now)
            return _endpoint(row)

    def get(self, name: str) -> Endpoint | None:
        with self._db.session() as s:
            row = s.get(EndpointRow, name)
            return _endpoint(row) if row else None

    def list(self, *, include_deleted: bool = False) -> list[Endpoint]:
        with self._db.session() as s:
            stmt = select(EndpointRow).order_by(EndpointRow.name)
            if not include_deleted:
                stmt = stmt.where(EndpointRow.status != EndpointStatus.DELETED.value)
            return [_endpoint(r) for r in s.scalars(stmt)]

    def page(self, page: PageRequest, *, visible: Callable[[Endpoint], bool] | None = None) -> Page[Endpoint]:
        """Live endpoints by name, from after the cursor's name (keyset); `visible` drops the ones a caller may not
        see (their allowed roles are JSON text, not a SQL filter), fetching further batches until the page is
        full or the table ends."""
        after = str(page.after[0]) if page.after else None
        found: list[Endpoint] = []
        with self._db.session() as s:
            while len(found) <= page.limit:
                stmt = (select(EndpointRow).where(EndpointRow.status != EndpointStatus.DELETED.value)
                        .order_by(EndpointRow.name).limit(page.limit + 1))
                if after is not None:
                    stmt = stmt.where(EndpointRow.name > after)
                rows = list(s.scalars(stmt))
                found += [e for e in map(_endpoint, rows) if visible is None or visible(e)]
                if len(rows) <= page.limit:
                    break
                after = rows[-1].name
        return page_from_rows(found, limit=page.limit, key=lambda e: [e.name])

    def update_config(self, name: str, config: EndpointConfig, *, now: datetime) -> Endpoint:
        with self._db.session(write_lock=True) as s:
            row = self._locked(s, name)
            _apply(row, config)
            row.updated_at = now
            self._event(s, row, "updated", {"min_replicas": config.min_replicas,
                                            "max_replicas": config.max_replicas}, now)
            return _endpoint(row)

    def set_state(self, name: str, *, now: datetime, status: EndpointStatus | None = None,
                  desired_replicas: int | None = None, reason: str | None = None,
                  event: tuple[str, dict[str, Any]] | None = None,
                  fence: LeaderFence | None = None) -> Endpoint | None:
        """Change status / desired replicas and record an event, in one transaction; under a `fence` (the fleet
        manager's term) only while the term holds, else NotLeader and nothing is written."""
        with self._db.session(write_lock=True) as s:
            check_fence(s, fence, is_sqlite=self._db.is_sqlite)  # before the endpoint's lock: one order
            row = self._locked(s, name)
            if row is None:
                return None
            if status is not None and status.value != row.status:
                row.status = status.value
                row.reason = reason
                row.updated_at = now
            if desired_replicas is not None:
                row.desired_replicas = desired_replicas
            if event is not None:
                self._event(s, row, event[0], event[1], now)
            return _endpoint(row)

    def _locked(self, s, name: str) -> EndpointRow | None:
        """The endpoint's row, locked for this transaction on PostgreSQL (SQLite's writers are serialized): a
        PATCH and the fleet manager both number the endpoint's next event from it."""
        return s.get(EndpointRow, name, populate_existing=True, with_for_update=not self._db.is_sqlite)

    def record(self, name: str, type_: str, data: dict[str, Any], *, now: datetime,
               fence: LeaderFence | None = None) -> None:
        """Append an event to an endpoint's log (under a `fence`: only while the term holds)."""
        self.set_state(name, now=now, event=(type_, data), fence=fence)

    def events_after(self, name: str, seq: int, *, limit: int) -> list[EndpointEvent]:
        """Events with a sequence number above `seq`, oldest first."""
        with self._db.session() as s:
            rows = s.scalars(select(EndpointEventRow)
                             .where(EndpointEventRow.endpoint == name, EndpointEventRow.seq > seq)
                             .order_by(EndpointEventRow.seq).limit(limit)).all()
            return [EndpointEvent(endpoint=r.endpoint, seq=r.seq, type=r.type, data=r.data, created_at=r.created_at)
                    for r in rows]

    def load(self, name: str) -> tuple[int, int]:
        """(queued, running) jobs of an endpoint in one read (the fleet manager asks at every pass)."""
        with self._db.session(write_lock=False) as s:
            counts = dict(s.execute(select(JobRow.status, func.count()).where(
                JobRow.endpoint == name, JobRow.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
                .group_by(JobRow.status)).all())
        return counts.get(JobStatus.QUEUED.value, 0), counts.get(JobStatus.RUNNING.value, 0)

    def queued_jobs(self, name: str) -> list[str]:
        """Ids of the jobs still waiting on an endpoint (cancelled when it is deleted)."""
        with self._db.session() as s:
            return list(s.scalars(select(JobRow.id).where(JobRow.endpoint == name,
                                                          JobRow.status == JobStatus.QUEUED.value)))

    def unknown_references(self, *, roles: list[str], preload: list[str]) -> tuple[list[str], list[str]]:
        """What an endpoint's settings name that does not exist, read together: (the role names no role has,
        the preload sha256s no registered model has), each in the order given."""
        with self._db.session() as s:
            known_roles = set(s.scalars(select(RoleRow.name).where(RoleRow.name.in_(roles)))) if roles else set()
            known_files = (set(s.scalars(select(CheckpointRow.sha256).where(CheckpointRow.sha256.in_(preload))))
                           if preload else set())
        return [r for r in roles if r not in known_roles], [sha for sha in preload if sha not in known_files]

    def preloading(self, sha256: str) -> list[str]:
        """Names of the live endpoints that preload a model (pins against deleting it)."""
        return [e.name for e in self.list() if sha256 in e.config.preload]

    @staticmethod
    def _event(s, row: EndpointRow, type_: str, data: dict[str, Any], now: datetime) -> None:
        row.event_seq = (row.event_seq or 0) + 1
        s.add(EndpointEventRow(endpoint=row.name, seq=row.event_seq, type=type_, data=data, created_at=now))
        if type_ in NOTIFIED_EVENTS:
            emit(s, NOTIFIED_EVENTS[type_], now=now, endpoint=row.name, data={"endpoint": row.name, **data})
        if row.event_seq > MAX_EVENTS_PER_ENDPOINT:
            s.execute(delete(EndpointEventRow).where(
                EndpointEventRow.endpoint == row.name,
                EndpointEventRow.seq <= row.event_seq - MAX_EVENTS_PER_ENDPOINT))
