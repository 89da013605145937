"""Schemas for inference jobs (the worker protocol's are `sdfleet.jobs.wire`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.jobs.records import Job


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
            id=job.id, status=job.status.value, endpoint=job.endpoint, task=s.task, source=s.source,
            model=s.model, seed=s.seed, prompt=s.prompt, params=dict(s.params) if s.params is not None else None,
            progress=ProgressPublic(value=p.value, max=p.max, node_id=p.node_id,
                                    fraction=1.0 if job.status.value == "succeeded" else (p.value / p.max if p.max else 0.0)),
            attempts=job.attempts, cancel_requested=job.cancel_requested, queued_at=job.queued_at,
            started_at=job.started_at, finished_at=job.finished_at,
            outputs=[OutputPublic(index=o.index, url=f"/api/v1/inferences/{job.id}/outputs/{o.index}", width=o.width,
                                  height=o.height, size=o.size, node_id=o.node_id) for o in job.outputs],
            error=job.error, info=dict(s.info) if s.info is not None else None,
        )


class InputImagePublic(BaseModel):
    name: str
    width: int
    height: int
