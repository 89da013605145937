"""Schemas for inference jobs and the worker protocol."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.domain.jobs import Job


class InferenceCreate(Strict):
    task: Literal["txt2img", "img2img"] | None = Field(default=None, description="An A1111 task, with `params`.")
    params: dict[str, Any] | None = Field(default=None, description="A1111 txt2img/img2img fields.")
    graph: dict[str, Any] | None = Field(default=None, description="A ComfyUI API-format graph.")
    endpoint: StrictStr | None = Field(default=None, max_length=64)
    webhook: StrictStr | None = Field(
        default=None, max_length=2048,
        description="A URL told when the job finishes (signed per Standard Webhooks with your job-webhook secret, "
                    "`GET /api/v1/notifications/job-webhook`).")


class InferenceAccepted(BaseModel):
    id: str
    status: str


class OutputPublic(BaseModel):
    index: int
    url: str
    width: int
    height: int
    size: int
    node_id: str


class ProgressPublic(BaseModel):
    value: int
    max: int
    node_id: str | None
    fraction: float


class InferencePublic(BaseModel):
    id: str
    status: str
    endpoint: str | None
    task: str | None
    source: str | None
    model: str | None
    seed: int | None
    prompt: str | None
    params: dict[str, Any] | None
    progress: ProgressPublic
    attempts: int
    cancel_requested: bool
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    outputs: list[OutputPublic]
    error: dict[str, Any] | None
    info: dict[str, Any] | None = None

    @classmethod
    def of(cls, job: Job) -> InferencePublic:
        s = job.summary
        p = job.progress
        return cls(
            id=job.id, status=job.status.value, endpoint=job.endpoint, task=s.get("task"), source=s.get("source"),
            model=s.get("model"), seed=s.get("seed"), prompt=s.get("prompt"), params=s.get("params"),
            progress=ProgressPublic(value=p.value, max=p.max, node_id=p.node_id,
                                    fraction=1.0 if job.status.value == "succeeded" else (p.value / p.max if p.max else 0.0)),
            attempts=job.attempts, cancel_requested=job.cancel_requested, queued_at=job.queued_at,
            started_at=job.started_at, finished_at=job.finished_at,
            outputs=[OutputPublic(index=o.index, url=f"/api/v1/inferences/{job.id}/outputs/{o.index}", width=o.width,
                                  height=o.height, size=o.size, node_id=o.node_id) for o in job.outputs],
            error=job.error, info=s.get("info"),
        )


class InputImagePublic(BaseModel):
    name: str
    width: int
    height: int


# Worker protocol
class WorkerReport(Strict):
    status: Literal["starting", "idle", "busy", "draining"] = "idle"
    device: StrictStr | None = Field(default=None, max_length=64)
    loaded_models: list[StrictStr] = Field(default_factory=list, max_length=64)
    info: dict[str, Any] = Field(default_factory=dict)


class ClaimRequest(Strict):
    wait_seconds: StrictFloat | StrictInt = Field(default=20, ge=0, le=60)


class ModelToFetch(BaseModel):
    folder: str
    name: str
    sha256: str
    size: int
    url: str


class PreloadModelPublic(BaseModel):
    folder: str
    name: str
    sha256: str
    size: int
    url: str


class WorkerAssignment(BaseModel):
    """The worker's endpoint and the models it should download and load before its first job."""

    endpoint: str
    preload: list[PreloadModelPublic]


class ClaimedJob(BaseModel):
    id: str
    fencing_token: int
    lease_expires_at: datetime
    lease_seconds: float
    graph: dict[str, Any]
    models: list[ModelToFetch]
    inputs: list[dict[str, str]]
    extra: dict[str, Any]
    kind: str = "inference"
    #: a `train` job's base model, dataset manifest, parameters and LoRA name
    training: dict[str, Any] | None = None


class HeartbeatRequest(Strict):
    fencing_token: StrictInt
    value: StrictInt | None = Field(default=None, ge=0)
    max: StrictInt | None = Field(default=None, ge=0)
    node_id: StrictStr | None = Field(default=None, max_length=64)
    metrics: dict[StrictStr, StrictFloat | StrictInt] | None = Field(
        default=None, max_length=16, description="A training's loss, lr, steps_per_second, eta_seconds, epoch.")
    preview_png_base64: StrictStr | None = Field(default=None, max_length=8_000_000)


class HeartbeatAnswer(BaseModel):
    cancel_requested: bool
    lease_expires_at: datetime | None


class OutputDescription(Strict):
    index: StrictInt = Field(ge=0)
    node_id: StrictStr = Field(max_length=64)


class CompleteRequest(Strict):
    fencing_token: StrictInt
    outputs: list[OutputDescription] = Field(default_factory=list, max_length=256)
    info: dict[str, Any] | None = None


class FailRequest(Strict):
    fencing_token: StrictInt
    code: StrictStr = Field(max_length=64)
    message: StrictStr = Field(max_length=4000)
    node_id: StrictStr | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict)


class TokenRequest(Strict):
    fencing_token: StrictInt
    reason: StrictStr = Field(default="", max_length=200)
