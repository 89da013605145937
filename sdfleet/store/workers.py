"""Worker registrations: each worker process authenticates with its own token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from sdfleet.domain.checkpoints import Checkpoint
from sdfleet.domain.leadership import LeaderFence
from sdfleet.domain.workers import WorkerRecord
from sdfleet.store.checkpoints import CheckpointRepository
from sdfleet.store.database import Database
from sdfleet.store.leader_leases import check_fence
from sdfleet.store.tables import EndpointRow, JobRow, WorkerRow


def worker_status(stored: str, *, busy: bool) -> str:
    """A worker's status from what it last reported and whether it holds a running job.

    `busy` is not written per job (one commit less per claim and end): a worker holding a running job is busy,
    even one that claimed before its first report; a draining or revoked one keeps what it said."""
    if stored in ("idle", "busy"):
        return "busy" if busy else "idle"
    return "busy" if busy and stored == "starting" else stored


def _record(row: WorkerRow, *, busy: bool = False) -> WorkerRecord:
    return WorkerRecord(
        id=row.id, name=row.name, endpoint=row.endpoint, status=worker_status(row.status, busy=busy), device=row.device, info=row.info,
        loaded_models=row.loaded_models, created_at=row.created_at, last_seen_at=row.last_seen_at,
        revoked_at=row.revoked_at,
    )


class SqlWorkerRegistry:
    """Workers table access."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, *, worker_id: str, name: str, endpoint: str, token_hash: str, now: datetime,
            fence: LeaderFence | None = None) -> WorkerRecord:
        """Register a worker identity (a replica's, under the fleet manager's `fence`: only while its term holds)."""
        with self._db.session() as s:
            check_fence(s, fence, is_sqlite=self._db.is_sqlite)
            row = WorkerRow(id=worker_id, name=name, endpoint=endpoint, token_hash=token_hash, status="starting",
                            info={}, loaded_models=[], created_at=now)
            s.add(row)
            s.flush()
            return _record(row)

    def find_by_token(self, token_hash: str) -> WorkerRecord | None:
        with self._db.session() as s:
            row = s.scalar(select(WorkerRow).where(WorkerRow.token_hash == token_hash))
            return _record(row) if row else None

    def get(self, worker_id: str) -> WorkerRecord | None:
        with self._db.session() as s:
            row = s.get(WorkerRow, worker_id)
            return _record(row, busy=bool(self._busy(s, [worker_id]))) if row else None

    def list(self, *, endpoint: str | None = None) -> list[WorkerRecord]:
        with self._db.session() as s:
            stmt = select(WorkerRow).where(WorkerRow.revoked_at.is_(None)).order_by(WorkerRow.created_at)
            if endpoint is not None:
                stmt = stmt.where(WorkerRow.endpoint == endpoint)
            rows = list(s.scalars(stmt))
            busy = self._busy(s, [r.id for r in rows])
            return [_record(r, busy=r.id in busy) for r in rows]

    @staticmethod
    def _busy(s, worker_ids: list[str]) -> set[str]:
        if not worker_ids:
            return set()
        return set(s.scalars(select(JobRow.worker_id).where(JobRow.status == "running",
                                                            JobRow.worker_id.in_(worker_ids))))

    def touch(self, worker_ids: list[str], *, now: datetime) -> set[str]:
        """Mark workers seen now, in one transaction; returns those among them whose tokens are revoked."""
        with self._db.session() as s:
            s.execute(update(WorkerRow).where(WorkerRow.id.in_(worker_ids), WorkerRow.revoked_at.is_(None))
                      .values(last_seen_at=now))
            return set(s.scalars(select(WorkerRow.id).where(WorkerRow.id.in_(worker_ids),
                                                            WorkerRow.revoked_at.is_not(None))))

    def report(self, worker_id: str, *, now: datetime, status: str | None = None, device: str | None = None,
               info: dict | None = None, loaded_models: list | None = None) -> None:
        values: dict = {"last_seen_at": now}
        if status is not None:
            values["status"] = status
        if device is not None:
            values["device"] = device
        if info is not None:
            values["info"] = info
        if loaded_models is not None:
            values["loaded_models"] = loaded_models
        with self._db.session() as s:
            s.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(**values))

    def revoke(self, worker_id: str, *, now: datetime, fence: LeaderFence | None = None) -> None:
        """Refuse the worker's token from now on (under a `fence`: only while the term holds)."""
        with self._db.session() as s:
            check_fence(s, fence, is_sqlite=self._db.is_sqlite)
            s.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(revoked_at=now, status="revoked"))

    def preloaded(self, endpoint: str) -> list[Checkpoint]:
        """The registered models an endpoint's `preload` names (its replicas may download and load them)."""
        with self._db.session() as s:
            row = s.get(EndpointRow, endpoint)
            if row is None or row.status == "deleted":
                return []
            repo = CheckpointRepository(s)
            found = [repo.get_by_sha256(sha) for sha in row.preload or []]
            return [c for c in found if c is not None]
