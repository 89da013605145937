"""Schemas of the model registry: checkpoints, uploads, imports."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictInt, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.domain.checkpoints import MIN_MODEL_BYTES, Checkpoint, ImportJob, Upload, UploadPart


class CheckpointPublic(BaseModel):
    id: str
    name: str
    type: str
    sha256: str
    short_hash: str
    architecture: str
    layout: str
    precision: str
    size: int
    format: str
    tensor_count: int
    status: str
    allowed_roles: list[str]
    source: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str]

    @classmethod
    def of(cls, c: Checkpoint) -> CheckpointPublic:
        return cls(
            id=c.id, name=c.name, type=c.model_type.value, sha256=c.sha256, short_hash=c.short_hash,
            architecture=c.architecture, layout=c.layout, precision=c.precision, size=c.size, format=c.format,
            tensor_count=c.tensor_count, status=c.status.value, allowed_roles=list(c.allowed_roles), source=c.source,
            created_by=c.created_by, created_at=c.created_at, updated_at=c.updated_at, metadata=dict(c.metadata),
        )


class CheckpointUpdate(Strict):
    name: StrictStr | None = Field(default=None, max_length=255)
    allowed_roles: list[StrictStr] | None = Field(default=None, max_length=64)


class UploadCreate(Strict):
    filename: StrictStr = Field(max_length=255)
    type: StrictStr = Field(max_length=64)
    size: StrictInt = Field(ge=MIN_MODEL_BYTES, description="Bytes; no model file is smaller than 64.")
    sha256: StrictStr | None = Field(default=None, max_length=64)
    name: StrictStr | None = Field(default=None, max_length=255)
    allowed_roles: list[StrictStr] | None = Field(default=None, max_length=64)


class UploadComplete(Strict):
    parts: list[StrictInt] | None = Field(default=None, max_length=10_000)
    sha256: StrictStr | None = Field(default=None, max_length=64)


class UploadPartPublic(BaseModel):
    part_number: int
    size: int
    sha256: str

    @classmethod
    def of(cls, part: UploadPart) -> UploadPartPublic:
        return cls(part_number=part.part_number, size=part.size, sha256=part.sha256)


class UploadPublic(BaseModel):
    upload_id: str
    filename: str
    name: str
    type: str
    size: int
    part_size: int
    part_count: int
    sha256: str | None
    status: str
    parts: list[UploadPartPublic]
    missing_parts: list[int]
    #: presigned URLs to PUT missing parts straight to the store (S3 only; at most 100 at a time)
    part_urls: dict[int, str]
    expires_at: datetime
    checkpoint_id: str | None
    error: str | None

    @classmethod
    def of(cls, upload: Upload, part_urls: dict[int, str]) -> UploadPublic:
        return cls(
            upload_id=upload.id, filename=upload.filename, name=upload.name, type=upload.model_type.value,
            size=upload.size, part_size=upload.part_size, part_count=upload.part_count,
            sha256=upload.declared_sha256, status=upload.status.value,
            parts=[UploadPartPublic.of(p) for p in upload.parts], missing_parts=upload.missing_parts[:10_000],
            part_urls=part_urls, expires_at=upload.expires_at, checkpoint_id=upload.checkpoint_id,
            error=upload.error,
        )


class ImportCreate(Strict):
    url: StrictStr = Field(max_length=8192)
    type: StrictStr = Field(max_length=64)
    name: StrictStr | None = Field(default=None, max_length=255)
    allowed_roles: list[StrictStr] | None = Field(default=None, max_length=64)


class ImportPublic(BaseModel):
    id: str
    url: str
    type: str
    name: str | None
    status: str
    bytes_done: int
    bytes_total: int | None
    checkpoint_id: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: ImportJob) -> ImportPublic:
        return cls(
            id=job.id, url=job.url, type=job.model_type.value, name=job.name, status=job.status.value,
            bytes_done=job.bytes_done, bytes_total=job.bytes_total, checkpoint_id=job.checkpoint_id,
            error=job.error, created_at=job.created_at, updated_at=job.updated_at,
        )
