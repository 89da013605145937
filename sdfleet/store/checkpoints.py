"""Registry repository: checkpoints, their allowed roles and resumable uploads (URL imports: `store.imports`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, or_, select, text, update
from sqlalchemy.orm import Session

from sdfleet.domain.checkpoints import (
    Checkpoint,
    CheckpointStatus,
    ModelType,
    Upload,
    UploadPart,
    UploadStatus,
)
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.store.records import record_of
from sdfleet.store.tables import CheckpointRoleRow, CheckpointRow, UploadPartRow, UploadRow


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
