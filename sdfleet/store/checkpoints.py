"""Registry: checkpoints, their allowed roles and resumable uploads (URL imports: `store.imports`) — the repository
(inside a caller's transaction) and `SqlCheckpoints` / `SqlUploads`, the services' stores (one transaction a
method)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sdfleet.domain.accounts import User
from sdfleet.domain.audit import AuditEvent
from sdfleet.domain.checkpoints import (
    Checkpoint,
    CheckpointStatus,
    ModelType,
    Upload,
    UploadPart,
    UploadStatus,
)
from sdfleet.domain.notifications import EventType
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.audit import SqlAuditLog
from sdfleet.store.database import Database
from sdfleet.store.outbox import emit
from sdfleet.store.records import record_of
from sdfleet.store.tables import CheckpointRoleRow, CheckpointRow, UploadPartRow, UploadRow

T = TypeVar("T")


@dataclass(frozen=True)
class CheckpointFilter:
    """What a checkpoint list is narrowed to; None means any."""

    model_type: str | None = None
    status: str | None = None
    architecture: str | None = None
    name: str | None = None
    #: only checkpoints one of these roles may see; None means no visibility filter (admin)
    roles: tuple[str, ...] | None = None
    #: with `roles`: also the checkpoints this user registered (an uploader always sees their model)
    owner: str | None = None


def _visible_to(roles: tuple[str, ...], owner: str | None):
    """SQL condition: one of `roles` may see the checkpoint, or `owner` registered it."""
    by_role = exists().where(CheckpointRoleRow.checkpoint_id == CheckpointRow.id,
                             CheckpointRoleRow.role_name.in_(roles))
    return or_(by_role, CheckpointRow.created_by == owner) if owner is not None else by_role


def _checkpoint(row: CheckpointRow) -> Checkpoint:
    return record_of(Checkpoint, row, model_type=ModelType(row.model_type), status=CheckpointStatus(row.status),
                     allowed_roles=tuple(link.role_name for link in row.role_links),
                     metadata=dict(row.metadata_json or {}))


def _upload(row: UploadRow) -> Upload:
    return record_of(Upload, row, model_type=ModelType(row.model_type), status=UploadStatus(row.status),
                     allowed_roles=tuple(row.allowed_roles or ()),
                     parts=tuple(record_of(UploadPart, p) for p in row.part_rows))


class CheckpointRepository:
    """SQL access for the registry; every method runs inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._s = session

    # 1. Checkpoints

    def add(self, checkpoint: Checkpoint) -> Checkpoint:
        row = CheckpointRow(
            id=checkpoint.id,
            name=checkpoint.name,
            model_type=checkpoint.model_type.value,
            sha256=checkpoint.sha256,
            short_hash=checkpoint.short_hash,
            architecture=checkpoint.architecture,
            layout=checkpoint.layout,
            precision=checkpoint.precision,
            size=checkpoint.size,
            format=checkpoint.format,
            tensor_count=checkpoint.tensor_count,
            metadata_json=dict(checkpoint.metadata),
            status=checkpoint.status.value,
            source=checkpoint.source,
            created_by=checkpoint.created_by,
            created_at=checkpoint.created_at,
            updated_at=checkpoint.updated_at,
            role_links=[CheckpointRoleRow(role_name=r) for r in sorted(set(checkpoint.allowed_roles))],
        )
        self._s.add(row)
        self._s.flush()
        return _checkpoint(row)

    def get(self, checkpoint_id: str) -> Checkpoint | None:
        row = self._s.get(CheckpointRow, checkpoint_id)
        return _checkpoint(row) if row else None

    def lock_name(self, model_type: str, name: str) -> None:
        """Serialise registrations of one (type, name) until this transaction ends (names have no unique
        constraint any more). SQLite's write lock already does; PostgreSQL takes a transaction advisory lock."""
        if self._s.get_bind().dialect.name == "postgresql":
            self._s.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                            {"key": f"checkpoint-name:{model_type}:{name}"})

    def find_by_name(self, model_type: str, name: str, *, roles: tuple[str, ...] | None, owner: str | None = None
                     ) -> Checkpoint | None:
        """The oldest checkpoint of this type and name visible to `roles` or `owner` (roles None: any).
        Names are unique per viewer, not globally (docs/decisions.md): the first registered one wins."""
        stmt = select(CheckpointRow).where(CheckpointRow.model_type == model_type, CheckpointRow.name == name)
        if roles is not None:
            stmt = stmt.where(_visible_to(roles, owner))
        row = self._s.scalars(stmt.order_by(CheckpointRow.created_at, CheckpointRow.id)).first()
        return _checkpoint(row) if row else None

    def get_by_sha256(self, sha256: str) -> Checkpoint | None:
        row = self._s.scalars(
            select(CheckpointRow).where(CheckpointRow.sha256 == sha256).order_by(CheckpointRow.id)
        ).first()
        return _checkpoint(row) if row else None

    def count_by_sha256(self, sha256: str) -> int:
        return self._s.scalar(select(func.count()).select_from(CheckpointRow).where(CheckpointRow.sha256 == sha256))

    def count(self) -> int:
        return self._s.scalar(select(func.count()).select_from(CheckpointRow))

    def names_by_type(self, *, status: str, roles: tuple[str, ...] | None, owner: str | None = None
                      ) -> list[tuple[str, str]]:
        """(type, name) of every checkpoint in `status` visible to `roles` or `owner` (None: all), in one query."""
        stmt = select(CheckpointRow.model_type, CheckpointRow.name).where(CheckpointRow.status == status)
        if roles is not None:
            stmt = stmt.where(_visible_to(roles, owner))
        return [(t, n) for t, n in self._s.execute(stmt)]

    def pins(self, *, status: str, roles: tuple[str, ...] | None, owner: str | None = None
             ) -> list[tuple[str, str, str, int]]:
        """(type, name, sha256, size) of every checkpoint in `status` visible to `roles` or `owner` (None: all),
        in one query."""
        stmt = select(CheckpointRow.model_type, CheckpointRow.name, CheckpointRow.sha256, CheckpointRow.size).where(
            CheckpointRow.status == status)
        if roles is not None:
            stmt = stmt.where(_visible_to(roles, owner))
        return [(t, n, h, z) for t, n, h, z in self._s.execute(stmt)]

    def list(self, page: PageRequest, where: CheckpointFilter) -> Page[Checkpoint]:
        stmt = select(CheckpointRow).order_by(CheckpointRow.id).limit(page.limit + 1)
        if page.after:
            stmt = stmt.where(CheckpointRow.id > str(page.after[0]))
        if where.model_type is not None:
            stmt = stmt.where(CheckpointRow.model_type == where.model_type)
        if where.status is not None:
            stmt = stmt.where(CheckpointRow.status == where.status)
        if where.architecture is not None:
            stmt = stmt.where(CheckpointRow.architecture == where.architecture)
        if where.name is not None:
            stmt = stmt.where(CheckpointRow.name.contains(where.name, autoescape=True))
        if where.roles is not None:
            stmt = stmt.where(_visible_to(where.roles, where.owner))
        rows = [_checkpoint(r) for r in self._s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda c: [c.id])

    def update(
        self, checkpoint_id: str, *, name: str | None, allowed_roles: list[str] | None, now: datetime
    ) -> Checkpoint:
        row = self._s.get(CheckpointRow, checkpoint_id)
        if name is not None:
            row.name = name
        if allowed_roles is not None:
            row.role_links = [CheckpointRoleRow(role_name=r) for r in sorted(set(allowed_roles))]
        row.updated_at = now
        self._s.flush()
        return _checkpoint(row)

    def delete(self, checkpoint_id: str) -> None:
        self._s.execute(delete(CheckpointRoleRow).where(CheckpointRoleRow.checkpoint_id == checkpoint_id))
        self._s.execute(delete(CheckpointRow).where(CheckpointRow.id == checkpoint_id))

    # 2. Uploads

    def add_upload(self, upload: Upload) -> Upload:
        row = UploadRow(
            id=upload.id,
            user_id=upload.user_id,
            filename=upload.filename,
            name=upload.name,
            model_type=upload.model_type.value,
            size=upload.size,
            part_size=upload.part_size,
            declared_sha256=upload.declared_sha256,
            allowed_roles=list(upload.allowed_roles),
            status=upload.status.value,
            object_key=upload.object_key,
            store_upload_id=upload.store_upload_id,
            created_at=upload.created_at,
            expires_at=upload.expires_at,
        )
        self._s.add(row)
        self._s.flush()
        return _upload(row)

    def get_upload(self, upload_id: str, *, for_update: bool = False) -> Upload | None:
        stmt = select(UploadRow).where(UploadRow.id == upload_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._s.scalars(stmt).first()
        return _upload(row) if row else None

    def put_part(self, upload_id: str, part: UploadPart) -> None:
        row = self._s.get(UploadPartRow, (upload_id, part.part_number))
        if row is None:
            self._s.add(
                UploadPartRow(
                    upload_id=upload_id, part_number=part.part_number, size=part.size, sha256=part.sha256,
                    etag=part.etag,
                )
            )
        else:
            row.size, row.sha256, row.etag = part.size, part.sha256, part.etag
        self._s.flush()

    def set_upload_status(
        self,
        upload_id: str,
        status: UploadStatus,
        *,
        expect: UploadStatus | None = None,
        checkpoint_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Move an upload to `status` (only from `expect`, when given); True when a row changed."""
        stmt = update(UploadRow).where(UploadRow.id == upload_id)
        if expect is not None:
            stmt = stmt.where(UploadRow.status == expect.value)
        values: dict = {"status": status.value}
        if checkpoint_id is not None:
            values["checkpoint_id"] = checkpoint_id
        if error is not None:
            values["error"] = error[:2000]
        changed = self._s.execute(stmt.values(**values)).rowcount
        if status in (UploadStatus.COMPLETED, UploadStatus.FAILED, UploadStatus.EXPIRED):
            self._s.execute(delete(UploadPartRow).where(UploadPartRow.upload_id == upload_id))
        self._s.expire_all()
        return bool(changed)

    def expired_uploads(self, now: datetime, *, limit: int = 100) -> list[Upload]:
        stmt = (
            select(UploadRow)
            .where(UploadRow.status == UploadStatus.OPEN.value, UploadRow.expires_at < now)
            .order_by(UploadRow.expires_at)
            .limit(limit)
        )
        return [_upload(r) for r in self._s.scalars(stmt)]


class CheckpointReads:
    """What a service's check may read inside the store's transaction (and nothing else)."""

    def __init__(self, session: Session) -> None:
        self._repo = CheckpointRepository(session)
        self._accounts = AccountRepository(session)

    def user(self, user_id: str) -> User | None:
        return self._accounts.get_user(user_id)

    def find_by_name(self, model_type: str, name: str, *, roles: tuple[str, ...] | None, owner: str | None = None
                     ) -> Checkpoint | None:
        """The oldest checkpoint of this type and name visible to `roles` or `owner` (roles None: any)."""
        return self._repo.find_by_name(model_type, name, roles=roles, owner=owner)


#: a write run in the transaction that adds a checkpoint (`SqlImports.succeeding`: the import finishes there)
Within = Callable[[Session, Checkpoint], None]


class SqlCheckpoints:
    """Checkpoints for the registry service: every method is one transaction.

    A change that is audited takes its event (or a function building it from what was written) and appends it in
    the same transaction; a `check` runs inside the transaction, under the name's lock, and raises to abort it."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._audit = SqlAuditLog(database)

    def _append(self, s: Session, events: list[AuditEvent | None]) -> None:
        for event in events:
            if event is not None:
                self._audit.append(event, session=s)

    # Reading
    def get(self, checkpoint_id: str) -> Checkpoint | None:
        with self._db.session() as s:
            return CheckpointRepository(s).get(checkpoint_id)

    def get_by_sha256(self, sha256: str) -> Checkpoint | None:
        with self._db.session() as s:
            return CheckpointRepository(s).get_by_sha256(sha256)

    def find_by_name(self, model_type: str, name: str, *, roles: tuple[str, ...] | None, owner: str | None = None
                     ) -> Checkpoint | None:
        with self._db.session() as s:
            return CheckpointRepository(s).find_by_name(model_type, name, roles=roles, owner=owner)

    def names_by_type(self, *, status: str, roles: tuple[str, ...] | None, owner: str | None = None
                      ) -> list[tuple[str, str]]:
        with self._db.session() as s:
            return CheckpointRepository(s).names_by_type(status=status, roles=roles, owner=owner)

    def pins(self, *, status: str, roles: tuple[str, ...] | None, owner: str | None = None
             ) -> list[tuple[str, str, str, int]]:
        with self._db.session() as s:
            return CheckpointRepository(s).pins(status=status, roles=roles, owner=owner)

    def count(self) -> int:
        with self._db.session() as s:
            return CheckpointRepository(s).count()

    def count_by_sha256(self, sha256: str) -> int:
        with self._db.session() as s:
            return CheckpointRepository(s).count_by_sha256(sha256)

    def list(self, page: PageRequest, where: CheckpointFilter) -> Page[Checkpoint]:
        with self._db.session() as s:
            return CheckpointRepository(s).list(page, where)

    def role_names(self, names: list[str]) -> set[str]:
        """Which of these role names exist."""
        with self._db.session() as s:
            return {r.name for r in AccountRepository(s).get_roles(names)}

    def read(self, reader: Callable[[CheckpointReads], T]) -> T:
        """`reader`'s answer from one transaction's reads (a name check that needs the registering user's roles)."""
        with self._db.session() as s:
            return reader(CheckpointReads(s))

    # Changing
    def add(self, checkpoint: Checkpoint, *, check: Callable[[CheckpointReads], None],
            audit: Callable[[Checkpoint, CheckpointReads], AuditEvent | None], within: Within | None = None
            ) -> Checkpoint | None:
        """Add a checkpoint under its (type, name) lock after `check(reads)`, append `audit(added, reads)` and run
        `within`, all in one write transaction. None (nothing written) when a unique constraint refused it."""
        try:
            with self._db.session(write_lock=True) as s:
                repo = CheckpointRepository(s)
                repo.lock_name(checkpoint.model_type.value, checkpoint.name)
                reads = CheckpointReads(s)
                check(reads)
                added = repo.add(checkpoint)
                self._append(s, [audit(added, reads)])
                if within is not None:
                    within(s, added)
                return added
        except IntegrityError:
            return None

    def update(self, current: Checkpoint, *, name: str | None, allowed_roles: list[str] | None, now: datetime,
               check_name: Callable[[CheckpointReads], None] | None,
               audit: Callable[[Checkpoint], list[AuditEvent | None]]) -> Checkpoint | None:
        """Rename a checkpoint or change its roles in one write transaction; with `check_name`, the new name is
        locked first and checked. Appends `audit(updated)`. None (nothing written) when a unique constraint
        refused it."""
        try:
            with self._db.session(write_lock=True) as s:
                repo = CheckpointRepository(s)
                if check_name is not None and name is not None:
                    repo.lock_name(current.model_type.value, name)
                    check_name(CheckpointReads(s))
                updated = repo.update(current.id, name=name, allowed_roles=allowed_roles, now=now)
                self._append(s, audit(updated))
                return updated
        except IntegrityError:
            return None

    def delete(self, checkpoint: Checkpoint, *, event: AuditEvent | None) -> bool:
        """Delete a checkpoint and append its event; True when no checkpoint uses its file any more."""
        with self._db.session(write_lock=True) as s:
            repo = CheckpointRepository(s)
            repo.delete(checkpoint.id)
            orphaned = repo.count_by_sha256(checkpoint.sha256) == 0
            self._append(s, [event])
            return orphaned


class SqlUploads:
    """Resumable uploads' rows and their parts for the upload service: every method is one transaction."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, upload: Upload) -> Upload:
        with self._db.session(write_lock=True) as s:
            return CheckpointRepository(s).add_upload(upload)

    def get(self, upload_id: str) -> Upload | None:
        with self._db.session() as s:
            return CheckpointRepository(s).get_upload(upload_id)

    def put_part(self, upload_id: str, part: UploadPart) -> Upload | None:
        """Record a part, with the upload's row locked, when the upload is still open; answers the upload as it was
        (None: gone; a status other than open: nothing written)."""
        with self._db.session(write_lock=True) as s:
            repo = CheckpointRepository(s)
            current = repo.get_upload(upload_id, for_update=True)
            if current is not None and current.status is UploadStatus.OPEN:
                repo.put_part(upload_id, part)
            return current

    def set_status(self, upload_id: str, status: UploadStatus, *, expect: UploadStatus | None = None,
                   error: str | None = None) -> bool:
        """Move an upload to `status` (only from `expect`, when given); True when a row changed."""
        with self._db.session(write_lock=True) as s:
            return CheckpointRepository(s).set_upload_status(upload_id, status, expect=expect, error=error)

    def completed(self, upload_id: str, *, checkpoint_id: str, now: datetime, user_id: str,
                  data: dict[str, Any]) -> None:
        """Mark an upload completed with its checkpoint, and its notification (`upload.registered`, `data`), in one
        transaction."""
        with self._db.session(write_lock=True) as s:
            CheckpointRepository(s).set_upload_status(upload_id, UploadStatus.COMPLETED, checkpoint_id=checkpoint_id)
            emit(s, EventType.UPLOAD_REGISTERED, now=now, user_id=user_id, data=data)

    def expired(self, now: datetime) -> list[Upload]:
        """Open uploads past their expiry (at most 100, oldest expiry first)."""
        with self._db.session() as s:
            return CheckpointRepository(s).expired_uploads(now)
