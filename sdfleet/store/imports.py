"""URL imports as leased units of work: the API server running one holds a lease it renews; a fencing token,
raised on every takeover, is checked by every write, so two servers never both finish one import.

The same approach as the job queue's (`store.jobs.SqlJobQueue`): an atomic claim (PostgreSQL `FOR UPDATE SKIP
LOCKED`, SQLite `BEGIN IMMEDIATE`), an expiry that the holder pushes forward, a token presented on every write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from sdfleet.domain.checkpoints import Checkpoint, ImportJob, ImportStatus, ModelType
from sdfleet.domain.notifications import EventType
from sdfleet.store.checkpoints import Within
from sdfleet.store.database import Database
from sdfleet.store.outbox import emit
from sdfleet.store.tables import ImportRow

_UNFINISHED = (ImportStatus.QUEUED.value, ImportStatus.RUNNING.value)


class ImportLeaseLost(Exception):
    """The caller's fencing token is not the import's current one (another server took it over), or the import
    is finished."""


@dataclass(frozen=True)
class ImportLease:
    """An import this server now holds, and the token its writes must present."""

    job: ImportJob
    token: int


def _import(row: ImportRow) -> ImportJob:
    return ImportJob(
        id=row.id, user_id=row.user_id, url=row.url, model_type=ModelType(row.model_type), name=row.name,
        allowed_roles=tuple(row.allowed_roles or ()), status=ImportStatus(row.status), bytes_done=row.bytes_done,
        bytes_total=row.bytes_total, created_at=row.created_at, updated_at=row.updated_at,
        checkpoint_id=row.checkpoint_id, error=row.error, attempts=row.attempts or 0,
    )


class ImportRepository:
    """SQL access for URL imports; every method runs inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, job: ImportJob, *, owner: str, lease_until: datetime) -> ImportLease:
        """Store a new import, leased at once to the server that accepted it (token 1, attempt 1)."""
        row = ImportRow(
            id=job.id, user_id=job.user_id, url=job.url, model_type=job.model_type.value, name=job.name,
            allowed_roles=list(job.allowed_roles), status=job.status.value, bytes_done=job.bytes_done,
            bytes_total=job.bytes_total, created_at=job.created_at, updated_at=job.updated_at,
            owner=owner, lease_expires_at=lease_until, fencing_token=1, attempts=1,
        )
        self._s.add(row)
        self._s.flush()
        return ImportLease(job=_import(row), token=1)

    def get(self, import_id: str) -> ImportJob | None:
        row = self._s.get(ImportRow, import_id)
        return _import(row) if row else None

    def lease_of(self, import_id: str) -> tuple[str | None, datetime | None, int]:
        """Who holds an import, until when, with which token (tests and diagnostics)."""
        row = self._s.get(ImportRow, import_id, populate_existing=True)
        if row is None:
            return None, None, 0
        return row.owner, row.lease_expires_at, row.fencing_token

    def claim_expired(self, *, owner: str, now: datetime, lease_seconds: float, limit: int,
                      max_attempts: int, exhausted_reason: str) -> list[ImportLease]:
        """Take over unfinished imports whose lease expired (or that never had one: rows of an older server),
        oldest first, at most `limit`; one already tried `max_attempts` times fails with `exhausted_reason`.

        A takeover starts the download again from the first byte: the partial file is on the disk of the server
        that stopped."""
        if limit <= 0:
            return []
        rows = self._s.scalars(
            select(ImportRow)
            .where(ImportRow.status.in_(_UNFINISHED),
                   or_(ImportRow.lease_expires_at.is_(None), ImportRow.lease_expires_at < now))
            .order_by(ImportRow.created_at, ImportRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        leases = []
        for row in rows:
            row.fencing_token = (row.fencing_token or 0) + 1
            row.updated_at = now
            if (row.attempts or 0) >= max_attempts:
                row.status, row.error, row.owner, row.lease_expires_at = (
                    ImportStatus.FAILED.value, exhausted_reason, None, None)
                self._finished(row, now=now)
                continue
            row.attempts = (row.attempts or 0) + 1
            row.status, row.bytes_done, row.owner = ImportStatus.QUEUED.value, 0, owner
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            leases.append(ImportLease(job=_import(row), token=row.fencing_token))
        self._s.flush()
        return leases

    def renew(self, import_id: str, *, token: int, now: datetime, lease_seconds: float) -> None:
        """Push the lease's expiry forward (the holder's heartbeat)."""
        row = self._held(import_id, token)
        row.lease_expires_at = now + timedelta(seconds=lease_seconds)

    def release(self, import_id: str, *, token: int, now: datetime) -> None:
        """Hand an import back (its server is stopping): expired at once, the token raised so the old holder's
        writes are refused, and the attempt not counted."""
        row = self._held(import_id, token)
        row.status, row.owner, row.lease_expires_at = ImportStatus.QUEUED.value, None, now
        row.fencing_token += 1
        row.attempts = max(0, (row.attempts or 0) - 1)
        row.updated_at = now

    def update(self, import_id: str, *, token: int, now: datetime, status: ImportStatus | None = None,
               bytes_done: int | None = None, bytes_total: int | None = None) -> None:
        """Record progress (or that the download started) for the lease holder."""
        row = self._held(import_id, token)
        if status is not None:
            row.status = ImportStatus(status).value
        if bytes_done is not None:
            row.bytes_done = bytes_done
        if bytes_total is not None:
            row.bytes_total = bytes_total
        row.updated_at = now

    def finish(self, import_id: str, *, token: int, now: datetime, status: ImportStatus,
               checkpoint_id: str | None = None, error: str | None = None) -> None:
        """End the import as succeeded or failed, exactly once, with its notification in the same transaction."""
        if status not in (ImportStatus.SUCCEEDED, ImportStatus.FAILED):
            raise ValueError(f"an import finishes as succeeded or failed, not {status.value}")
        row = self._held(import_id, token)
        row.status, row.checkpoint_id, row.updated_at = status.value, checkpoint_id, now
        row.error = error[:2000] if error is not None else None
        row.owner, row.lease_expires_at = None, None
        self._finished(row, now=now)

    # Internals

    def _held(self, import_id: str, token: int) -> ImportRow:
        # PostgreSQL: the row lock makes a takeover wait for this write (and this write see the takeover).
        row = self._s.get(ImportRow, import_id, populate_existing=True,
                          with_for_update=self._s.get_bind().dialect.name != "sqlite")
        if row is None or row.status not in _UNFINISHED or row.fencing_token != token:
            raise ImportLeaseLost(import_id)
        return row

    def _finished(self, row: ImportRow, *, now: datetime) -> None:
        succeeded = row.status == ImportStatus.SUCCEEDED.value
        emit(self._s, EventType.MODEL_IMPORT_FINISHED if succeeded else EventType.MODEL_IMPORT_FAILED, now=now,
             user_id=row.user_id, data={"import_id": row.id, "url": row.url, "name": row.name,
                                        "model_type": row.model_type, "checkpoint_id": row.checkpoint_id,
                                        "error": row.error})


class SqlImports:
    """URL imports for the service: every method is one transaction (the write lock; PostgreSQL: the import's row
    locked by every fenced write), with the fencing token checked by each write."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, job: ImportJob, *, owner: str, lease_until: datetime) -> ImportLease:
        """Store a new import, leased at once to the server that accepted it."""
        with self._db.session(write_lock=True) as s:
            return ImportRepository(s).add(job, owner=owner, lease_until=lease_until)

    def get(self, import_id: str) -> ImportJob | None:
        with self._db.session() as s:
            return ImportRepository(s).get(import_id)

    def claim_expired(self, *, owner: str, now: datetime, lease_seconds: float, limit: int,
                      max_attempts: int, exhausted_reason: str) -> list[ImportLease]:
        """Take over unfinished imports whose lease expired (`ImportRepository.claim_expired`)."""
        with self._db.session(write_lock=True) as s:
            return ImportRepository(s).claim_expired(owner=owner, now=now, lease_seconds=lease_seconds, limit=limit,
                                                     max_attempts=max_attempts, exhausted_reason=exhausted_reason)

    def renew(self, import_id: str, *, token: int, now: datetime, lease_seconds: float) -> None:
        """Push the lease's expiry forward; ImportLeaseLost when the token is not the current one."""
        with self._db.session(write_lock=True) as s:
            ImportRepository(s).renew(import_id, token=token, now=now, lease_seconds=lease_seconds)

    def release(self, import_id: str, *, token: int, now: datetime) -> None:
        """Hand an import back (its server is stopping); ImportLeaseLost when it is no longer held."""
        with self._db.session(write_lock=True) as s:
            ImportRepository(s).release(import_id, token=token, now=now)

    def update(self, import_id: str, *, token: int, now: datetime, **values) -> None:
        """Record progress for the lease holder; ImportLeaseLost when it is no longer held."""
        with self._db.session(write_lock=True) as s:
            ImportRepository(s).update(import_id, token=token, now=now, **values)

    def finish(self, import_id: str, *, token: int, now: datetime, **values) -> None:
        """End the import as succeeded or failed, with its notification; ImportLeaseLost when no longer held."""
        with self._db.session(write_lock=True) as s:
            ImportRepository(s).finish(import_id, token=token, now=now, **values)

    @staticmethod
    def succeeding(import_id: str, *, token: int, clock: Callable[[], datetime]) -> Within:
        """The write that ends the import as succeeded with the checkpoint added in the same transaction (given to
        `SqlCheckpoints.add`): a server whose lease was taken over adds nothing (ImportLeaseLost rolls it back)."""
        def finish(s: Session, checkpoint: Checkpoint) -> None:
            ImportRepository(s).finish(import_id, token=token, now=clock(), status=ImportStatus.SUCCEEDED,
                                       checkpoint_id=checkpoint.id)

        return finish
