"""What a fleet looks like right now, in a few aggregate queries (the `/metrics` scrape reads it).

Each query is a GROUP BY over an index (`ix_jobs_claim` starts with `status`), so a scrape costs the same
with ten or a hundred thousand finished jobs in the table; nothing here writes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from sdfleet.store.database import Database
from sdfleet.store.tables import EndpointRow, JobRow, WorkerRow
from sdfleet.store.workers import worker_status

#: worker statuses that are history, not replicas (revoked tokens, deleted replicas)
_GONE = ("revoked", "deleted", "gone")


@dataclass(frozen=True)
class WorkerMemory:
    """What one live worker last reported about its memory, in bytes."""

    name: str
    endpoint: str
    ram_total: int
    ram_free: int
    vram_total: int
    vram_free: int


@dataclass(frozen=True)
class FleetSnapshot:
    """Counts of jobs, queues and replicas at one moment."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  #: (kind, status) → count
    queue_depth: dict[str, int] = field(default_factory=dict)  #: endpoint → queued jobs
    oldest_queued_at: dict[str, datetime] = field(default_factory=dict)  #: endpoint → oldest queued job's time
    replicas: dict[tuple[str, str], int] = field(default_factory=dict)  #: (endpoint, status) → workers
    desired_replicas: dict[str, int] = field(default_factory=dict)  #: endpoint → what the autoscaler wants
    memory: tuple[WorkerMemory, ...] = ()


class SqlFleetStats:
    """Reads a `FleetSnapshot` from the jobs, workers and endpoints tables."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def snapshot(self) -> FleetSnapshot:
        with self._db.session() as s:
            jobs = {(kind, status): n for kind, status, n in
                    s.execute(select(JobRow.kind, JobRow.status, func.count()).group_by(JobRow.kind, JobRow.status))}
            queued = s.execute(select(JobRow.endpoint, func.count(), func.min(JobRow.queued_at))
                               .where(JobRow.status == "queued").group_by(JobRow.endpoint)).all()
            live = s.execute(select(WorkerRow.id, WorkerRow.name, WorkerRow.endpoint, WorkerRow.status, WorkerRow.info)
                             .where(WorkerRow.revoked_at.is_(None), WorkerRow.status.not_in(_GONE))).all()
            running = set(s.scalars(select(JobRow.worker_id).where(JobRow.status == "running")))
            replicas = Counter((w.endpoint, worker_status(w.status, busy=w.id in running)) for w in live)
            desired = dict(s.execute(select(EndpointRow.name, EndpointRow.desired_replicas)).all())
        return FleetSnapshot(
            jobs=jobs,
            queue_depth={endpoint or "": n for endpoint, n, _ in queued},
            oldest_queued_at={endpoint or "": oldest for endpoint, _, oldest in queued if oldest is not None},
            replicas=dict(replicas),
            desired_replicas=desired,
            memory=tuple(_memory(w.name, w.endpoint, w.info) for w in live if _reports_memory(w.info)),
        )


def _reports_memory(info) -> bool:
    return isinstance(info, dict) and all(isinstance(info.get(k), int) for k in ("ram_total", "ram_free"))


def _memory(name: str, endpoint: str, info: dict) -> WorkerMemory:
    def number(key: str) -> int:
        value = info.get(key)
        return value if isinstance(value, int) else 0

    return WorkerMemory(name=name, endpoint=endpoint, ram_total=number("ram_total"), ram_free=number("ram_free"),
                        vram_total=number("vram_total"), vram_free=number("vram_free"))
