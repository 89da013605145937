"""Datasets, who may see them, and their images: the repository (inside a caller's transaction) and `SqlDatasets`,
the service's store (one transaction a method)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sdfleet.domain.datasets import Dataset, DatasetImage, content_hash
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
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


class DuplicateImage(Exception):
    """An image with the same bytes was recorded in the dataset meanwhile (its unique constraint refused these)."""


class SqlDatasets:
    """Datasets for the service: every method is one transaction."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, dataset: Dataset) -> Dataset | None:
        """Add a dataset; None (nothing written) when its owner has a dataset of that name."""
        try:
            with self._db.session(write_lock=True) as s:
                repo = DatasetRepository(s)
                if repo.get_by_name(dataset.user_id, dataset.name) is not None:
                    return None
                return repo.add(dataset)
        except IntegrityError:
            return None

    def list(self, page: PageRequest, *, user_id: str, roles: tuple[str, ...] | None,
             name: str | None = None) -> Page[Dataset]:
        """Datasets the user owns or one of `roles` may see (None: every dataset), oldest first."""
        with self._db.session(write_lock=False) as s:
            return DatasetRepository(s).list(page, user_id=user_id, roles=roles, name=name)

    def get(self, dataset_id: str) -> Dataset | None:
        with self._db.session(write_lock=False) as s:
            return DatasetRepository(s).get(dataset_id)

    def update(self, dataset_id: str, *, name: str | None, description: str | None,
               allowed_roles: list[str] | None, now: datetime) -> Dataset | None:
        """Change the given fields; None (nothing written) when the owner has another dataset named `name`."""
        try:
            with self._db.session(write_lock=True) as s:
                repo = DatasetRepository(s)
                if name is not None:
                    current = repo.get(dataset_id)
                    same = repo.get_by_name(current.user_id, name) if current is not None else None
                    if same is not None and same.id != dataset_id:
                        return None
                return repo.update(dataset_id, name=name, description=description, allowed_roles=allowed_roles,
                                   now=now)
        except IntegrityError:
            return None

    def delete(self, dataset_id: str) -> None:
        """Delete a dataset, its roles and its image rows."""
        with self._db.session(write_lock=True) as s:
            DatasetRepository(s).delete(dataset_id)

    def image_sha256s(self, dataset_id: str) -> set[str]:
        with self._db.session(write_lock=False) as s:
            return DatasetRepository(s).image_sha256s(dataset_id)

    def add_images(self, dataset_id: str, images: list[DatasetImage], *, now: datetime,
                   check_count: Callable[[int], None]) -> bool:
        """Record images and refresh the dataset's totals, with the dataset's row locked (FOR UPDATE; SQLite: the
        write lock); `check_count(images now)` raises to write nothing. False (nothing written) when the dataset
        is gone; DuplicateImage when one of the images was recorded meanwhile."""
        try:
            with self._db.session(write_lock=True) as s:
                repo = DatasetRepository(s)
                if repo.get(dataset_id, for_update=True) is None:
                    return False
                repo.add_images(images)
                check_count(repo.count_images(dataset_id))
                repo.refresh_totals(dataset_id, now=now)
                return True
        except IntegrityError:
            raise DuplicateImage(dataset_id) from None

    def list_images(self, dataset_id: str, page: PageRequest) -> Page[DatasetImage]:
        with self._db.session(write_lock=False) as s:
            return DatasetRepository(s).list_images(dataset_id, page)

    def get_image(self, dataset_id: str, image_id: str) -> DatasetImage | None:
        with self._db.session(write_lock=False) as s:
            return DatasetRepository(s).get_image(dataset_id, image_id)

    def all_images(self, dataset_id: str) -> list[DatasetImage]:
        """Every image, in upload order."""
        with self._db.session(write_lock=False) as s:
            return DatasetRepository(s).all_images(dataset_id)

    def update_image(self, image: DatasetImage, *, caption: str | None, repeats: int | None,
                     now: datetime) -> DatasetImage:
        """Change an image's caption or repeats and refresh its dataset's totals."""
        with self._db.session(write_lock=True) as s:
            repo = DatasetRepository(s)
            updated = repo.update_image(image.id, caption=caption, repeats=repeats)
            repo.refresh_totals(image.dataset_id, now=now)
            return updated

    def delete_image(self, image: DatasetImage, *, now: datetime) -> None:
        """Remove an image's row and refresh its dataset's totals."""
        with self._db.session(write_lock=True) as s:
            repo = DatasetRepository(s)
            repo.delete_image(image.id)
            repo.refresh_totals(image.dataset_id, now=now)

    def role_names(self, names: list[str]) -> set[str]:
        """Which of these role names exist."""
        with self._db.session(write_lock=False) as s:
            return {r.name for r in AccountRepository(s).get_roles(names)}
