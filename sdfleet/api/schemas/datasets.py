"""Schemas of training datasets and their images."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictInt, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.domain.datasets import Dataset, DatasetImage


class DatasetCreateBody(Strict):
    name: StrictStr = Field(max_length=100)
    resolution: StrictInt = Field(default=512, description="Training resolution the images are checked against: a "
                                                            "multiple of 64 from 64 to 2048.")
    description: StrictStr = Field(default="", max_length=2000)
    allowed_roles: list[StrictStr] | None = Field(default=None, max_length=64,
                                                  description="Roles that may see it (\"*\": every trainer); "
                                                              "default: only you (and admins).")


class DatasetUpdate(Strict):
    name: StrictStr | None = Field(default=None, max_length=100)
    description: StrictStr | None = Field(default=None, max_length=2000)
    allowed_roles: list[StrictStr] | None = Field(default=None, max_length=64)


class DatasetPublic(BaseModel):
    id: str
    name: str
    user_id: str
    description: str
    resolution: int
    allowed_roles: list[str]
    image_count: int
    total_bytes: int
    content_hash: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: Dataset) -> DatasetPublic:
        return cls(id=d.id, name=d.name, user_id=d.user_id, description=d.description, resolution=d.resolution,
                   allowed_roles=list(d.allowed_roles), image_count=d.image_count, total_bytes=d.total_bytes,
                   content_hash=d.content_hash, created_at=d.created_at, updated_at=d.updated_at)


class DatasetImagePublic(BaseModel):
    id: str
    dataset_id: str
    sha256: str
    filename: str
    caption: str
    repeats: int
    width: int
    height: int
    size: int
    format: str
    url: str
    thumbnail_url: str
    created_at: datetime

    @classmethod
    def of(cls, i: DatasetImage) -> DatasetImagePublic:
        url = f"/api/v1/datasets/{i.dataset_id}/images/{i.id}/content"
        return cls(id=i.id, dataset_id=i.dataset_id, sha256=i.sha256, filename=i.filename, caption=i.caption,
                   repeats=i.repeats, width=i.width, height=i.height, size=i.size, format=i.format.lower(), url=url,
                   thumbnail_url=f"{url}?size=160", created_at=i.created_at)


class DatasetImageUpdate(Strict):
    caption: StrictStr | None = Field(default=None, max_length=2000)
    repeats: StrictInt | None = Field(default=None, description="1-100")


class ImagesAdded(BaseModel):
    items: list[DatasetImagePublic]
    dataset: DatasetPublic
