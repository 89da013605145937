"""The worker protocol's messages (`/api/v1/worker/…`): one definition, read and written by the server's
routes and by `sdfleet worker`'s client alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, model_validator

from sdfleet.jobs.records import ModelLoad, ModelSource
from sdfleet.jobs.spec import InputImage, JobKind, ModelPin


def refuse_unstorable_strings(value: Any, *, path: str) -> None:
    """NUL and lone surrogates cannot be stored (PostgreSQL text, UTF-8): refuse them up front."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path or 'value'} must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{path or 'value'} must be valid Unicode (no lone surrogates)") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_unstorable_strings(key, path=path or "key")
            refuse_unstorable_strings(item, path=f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            refuse_unstorable_strings(item, path=f"{path}[{i}]")


class WorkerRequest(BaseModel):
    """What a worker sends: unknown fields are refused, so are strings that cannot be stored."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unencodable_strings(cls, data):
        refuse_unstorable_strings(data, path="")
        return data


# Worker → server
class WorkerReport(WorkerRequest):
    """The worker's state, device and loaded models."""

    status: Literal["starting", "idle", "busy", "draining"] = "idle"
    device: StrictStr | None = Field(default=None, max_length=64)
    loaded_models: list[StrictStr] = Field(default_factory=list, max_length=64)
    info: dict[str, Any] = Field(default_factory=dict)


class ClaimRequest(WorkerRequest):
    """Long-poll for the next job."""

    wait_seconds: StrictFloat | StrictInt = Field(default=20, ge=0, le=60)


class HeartbeatRequest(WorkerRequest):
    """Extend the lease; optionally report sampler progress and a preview."""

    fencing_token: StrictInt
    value: StrictInt | None = Field(default=None, ge=0)
    max: StrictInt | None = Field(default=None, ge=0)
    node_id: StrictStr | None = Field(default=None, max_length=64)
    metrics: dict[StrictStr, StrictFloat | StrictInt] | None = Field(
        default=None, max_length=16, description="A training's loss, lr, steps_per_second, eta_seconds, epoch.")
    preview_png_base64: StrictStr | None = Field(default=None, max_length=8_000_000)
    #: before the steps: `loading_model` while a pinned model the engine does not hold is fetched and loaded
    phase: Literal["loading_model"] | None = None
    #: with `phase`: the pinned model's name
    model: StrictStr | None = Field(default=None, max_length=255)


class OutputDescription(WorkerRequest):
    """An uploaded output, named at completion."""

    index: StrictInt = Field(ge=0)
    node_id: StrictStr = Field(max_length=64)


class ModelLoadReport(WorkerRequest):
    """How a pinned model reached the engine for this job (the server counts it in `/metrics`)."""

    sha256: StrictStr = Field(pattern="^[0-9a-f]{64}$")
    source: Literal["memory", "disk", "download"]
    seconds: StrictFloat | StrictInt = Field(ge=0, le=86_400)

    def record(self) -> ModelLoad:
        return ModelLoad(sha256=self.sha256, source=ModelSource(self.source), seconds=float(self.seconds))

    @classmethod
    def of(cls, load: ModelLoad) -> ModelLoadReport:
        return cls(sha256=load.sha256, source=load.source.value, seconds=round(load.seconds, 4))


class CompleteRequest(WorkerRequest):
    """Finish a held job with its uploaded outputs."""

    fencing_token: StrictInt
    outputs: list[OutputDescription] = Field(default_factory=list, max_length=256)
    info: dict[str, Any] | None = None
    #: per pinned model, where it came from and what loading it took; absent from workers older than the field
    model_loads: list[ModelLoadReport] | None = Field(default=None, max_length=64)


class FailRequest(WorkerRequest):
    """Finish a held job as failed."""

    fencing_token: StrictInt
    code: StrictStr = Field(max_length=64)
    message: StrictStr = Field(max_length=4000)
    node_id: StrictStr | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict)

    def error(self) -> dict[str, Any]:
        """The job's error record: `{code, message[, node_id][, details]}`."""
        return {"code": self.code, "message": self.message, **({"node_id": self.node_id} if self.node_id else {}),
                **({"details": self.details} if self.details else {})}


class TokenRequest(WorkerRequest):
    """Cancelled / release: the lease and why."""

    fencing_token: StrictInt
    reason: StrictStr = Field(default="", max_length=200)


# Server → worker
class ModelToFetch(BaseModel):
    """A pinned model and where the worker downloads it (by sha256)."""

    folder: str
    name: str
    sha256: str
    size: int
    url: str

    @classmethod
    def of(cls, pin: ModelPin) -> ModelToFetch:
        return cls(folder=pin.folder, name=pin.name, sha256=pin.sha256, size=pin.size,
                   url=f"/api/v1/worker/models/{pin.sha256}")


class InputToFetch(BaseModel):
    """An input image of the job (the worker downloads it by name)."""

    name: str
    key: str

    @classmethod
    def of(cls, image: InputImage) -> InputToFetch:
        return cls(name=image.name, key=image.key)


class WorkerAssignment(BaseModel):
    """The worker's endpoint and the models it should download and load before its first job."""

    endpoint: str
    preload: list[ModelToFetch]


class ClaimedJob(BaseModel):
    """A job the worker holds: its lease and everything it needs to run it."""

    id: str
    kind: JobKind = JobKind.GENERATE
    fencing_token: int
    lease_expires_at: datetime
    lease_seconds: float
    models: list[ModelToFetch]
    inputs: list[InputToFetch]
    #: a generate job's graph
    graph: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    #: a `train` job's base model, dataset manifest, parameters and LoRA name
    training: dict[str, Any] | None = None


class HeartbeatAnswer(BaseModel):
    """Whether the owner asked to cancel, and the lease's new end."""

    cancel_requested: bool
    lease_expires_at: datetime | None
