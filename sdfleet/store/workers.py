"""Worker registrations: each worker process authenticates with its own token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from sdfleet.domain.checkpoints import Checkpoint
from sdfleet.domain.workers import WorkerRecord
from sdfleet.store.checkpoints import CheckpointRepository
from sdfleet.store.database import Database
from sdfleet.store.tables import EndpointRow, WorkerRow


def _record(row: WorkerRow) -> WorkerRecord:
    return WorkerRecord(
        id=row.id, name=row.name, endpoint=row.endpoint, status=row.status, device=row.device, info=row.info,
        loaded_models=row.loaded_models, created_at=row.created_at, last_seen_at=row.last_seen_at,
        revoked_at=row.revoked_at,
    )


class SqlWorkerRegistry:
    """Workers table access."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, *, worker_id: str, name: str, endpoint: str, token_hash: str, now: datetime) -> WorkerRecord:
        with self._db.session() as s:
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
            return _record(row) if row else None

    def list(self, *, endpoint: str | None = None) -> list[WorkerRecord]:
        with self._db.session() as s:
            stmt = select(WorkerRow).where(WorkerRow.revoked_at.is_(None)).order_by(WorkerRow.created_at)
            if endpoint is not None:
                stmt = stmt.where(WorkerRow.endpoint == endpoint)
            return [_record(r) for r in s.scalars(stmt)]

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

    def revoke(self, worker_id: str, *, now: datetime) -> None:
        with self._db.session() as s:
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
