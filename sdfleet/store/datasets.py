"""Dataset repository: datasets, who may see them, and their images."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from sdfleet.domain.datasets import Dataset, DatasetImage, content_hash
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.store.records import record_of
from sdfleet.store.tables import DatasetImageRow, DatasetRoleRow, DatasetRow


def _dataset(row: DatasetRow) -> Dataset:
    return record_of(Dataset, row, allowed_roles=tuple(link.role_name for link in row.role_links))


def _image(row: DatasetImageRow) -> DatasetImage:
    return record_of(DatasetImage, row)


class DatasetRepository:
    """SQL access for datasets; every method runs inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._s = session

    # 1. Datasets

    def add(self, dataset: Dataset) -> Dataset:
        row = DatasetRow(
            id=dataset.id, name=dataset.name, user_id=dataset.user_id, description=dataset.description,
            resolution=dataset.resolution, image_count=0, total_bytes=0, content_hash=dataset.content_hash,
            created_at=dataset.created_at, updated_at=dataset.updated_at,
            role_links=[DatasetRoleRow(role_name=r) for r in sorted(set(dataset.allowed_roles))],
        )
        self._s.add(row)
        self._s.flush()
        return _dataset(row)

    def get(self, dataset_id: str, *, for_update: bool = False) -> Dataset | None:
        row = self._s.get(DatasetRow, dataset_id, populate_existing=for_update,
                          with_for_update=for_update and self._s.bind.dialect.name != "sqlite")
        return _dataset(row) if row else None

    def get_by_name(self, user_id: str, name: str) -> Dataset | None:
        row = self._s.scalar(select(DatasetRow).where(DatasetRow.user_id == user_id, DatasetRow.name == name))
        return _dataset(row) if row else None

    def list(self, page: PageRequest, *, user_id: str, roles: tuple[str, ...] | None,
             name: str | None = None) -> Page[Dataset]:
        """Datasets the user owns or one of `roles` may see (None: every dataset), oldest first."""
        stmt = select(DatasetRow).order_by(DatasetRow.id).limit(page.limit + 1)
        if page.after:
            stmt = stmt.where(DatasetRow.id > str(page.after[0]))
        if roles is not None:
            shared = exists().where(DatasetRoleRow.dataset_id == DatasetRow.id, DatasetRoleRow.role_name.in_(roles))
            stmt = stmt.where(or_(DatasetRow.user_id == user_id, shared))
        if name is not None:
            stmt = stmt.where(DatasetRow.name.contains(name, autoescape=True))
        rows = [_dataset(r) for r in self._s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda d: [d.id])

    def update(self, dataset_id: str, *, name: str | None, description: str | None,
               allowed_roles: list[str] | None, now: datetime) -> Dataset:
        row = self._s.get(DatasetRow, dataset_id)
        if name is not None:
            row.name = name
        if description is not None:
            row.description = description
        if allowed_roles is not None:
            row.role_links = [DatasetRoleRow(role_name=r) for r in sorted(set(allowed_roles))]
        row.updated_at = now
        self._s.flush()
        return _dataset(row)

    def delete(self, dataset_id: str) -> None:
        self._s.execute(delete(DatasetImageRow).where(DatasetImageRow.dataset_id == dataset_id))
        self._s.execute(delete(DatasetRoleRow).where(DatasetRoleRow.dataset_id == dataset_id))
        self._s.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))

    def refresh_totals(self, dataset_id: str, *, now: datetime) -> Dataset:
        """Recount images and bytes and recompute the content hash (after any change to the images)."""
        row = self._s.get(DatasetRow, dataset_id)
        images = self.all_images(dataset_id)
        row.image_count = len(images)
        row.total_bytes = sum(i.size for i in images)
        row.content_hash = content_hash(images)
        row.updated_at = now
        self._s.flush()
        return _dataset(row)

    # 2. Images

    def add_images(self, images: list[DatasetImage]) -> None:
        self._s.add_all(DatasetImageRow(
            id=i.id, dataset_id=i.dataset_id, sha256=i.sha256, filename=i.filename, caption=i.caption,
            repeats=i.repeats, width=i.width, height=i.height, size=i.size, format=i.format, created_at=i.created_at,
        ) for i in images)
        self._s.flush()

    def get_image(self, dataset_id: str, image_id: str) -> DatasetImage | None:
        row = self._s.get(DatasetImageRow, image_id)
        return _image(row) if row is not None and row.dataset_id == dataset_id else None

    def image_sha256s(self, dataset_id: str) -> set[str]:
        return set(self._s.scalars(select(DatasetImageRow.sha256).where(DatasetImageRow.dataset_id == dataset_id)))

    def count_images(self, dataset_id: str) -> int:
        return self._s.scalar(select(func.count()).select_from(DatasetImageRow)
                              .where(DatasetImageRow.dataset_id == dataset_id)) or 0

    def list_images(self, dataset_id: str, page: PageRequest) -> Page[DatasetImage]:
        stmt = (select(DatasetImageRow).where(DatasetImageRow.dataset_id == dataset_id)
                .order_by(DatasetImageRow.id).limit(page.limit + 1))
        if page.after:
            stmt = stmt.where(DatasetImageRow.id > str(page.after[0]))
        rows = [_image(r) for r in self._s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda i: [i.id])

    def all_images(self, dataset_id: str) -> list[DatasetImage]:
        """Every image, in upload order (the order a training manifest lists them)."""
        stmt = select(DatasetImageRow).where(DatasetImageRow.dataset_id == dataset_id).order_by(DatasetImageRow.id)
        return [_image(r) for r in self._s.scalars(stmt)]

    def update_image(self, image_id: str, *, caption: str | None, repeats: int | None) -> DatasetImage:
        row = self._s.get(DatasetImageRow, image_id)
        if caption is not None:
            row.caption = caption
        if repeats is not None:
            row.repeats = repeats
        self._s.flush()
        return _image(row)

    def delete_image(self, image_id: str) -> None:
        self._s.execute(delete(DatasetImageRow).where(DatasetImageRow.id == image_id))
