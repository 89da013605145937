"""Jobs: the unit of work the fleet runs, and its life cycle (statuses, events, leases, the `Job` record)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sdfleet.jobs.spec import JobKind, JobSpec, JobSummary


class JobStatus(enum.StrEnum):
    """Where a job is in its life. `queued → running → succeeded | failed | cancelled`;
    a running job whose lease expires goes back to `queued` with its attempt count raised."""

    QUEUED = "queued"  #: waiting for a worker
    RUNNING = "running"  #: claimed by a worker holding a lease
    SUCCEEDED = "succeeded"  #: finished; outputs recorded
    FAILED = "failed"  #: finished with an error (bad graph at run time, attempts exhausted …)
    CANCELLED = "cancelled"  #: stopped on the owner's request

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class EventType(enum.StrEnum):
    """Events a job emits, in order; clients receive them over SSE and WebSocket."""

    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    OUTPUT = "output"
    REQUEUED = "requeued"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ModelSource(enum.StrEnum):
    """Where a worker found a model a job pins."""

    MEMORY = "memory"  #: already loaded in the worker's engine
    DISK = "disk"  #: in the worker's model file cache; loaded from there
    DOWNLOAD = "download"  #: not in the file cache: downloaded (or linked from a local object store), then loaded


@dataclass(frozen=True)
class ModelLoad:
    """What one pinned model cost a job before it could run: where it came from and how long fetching and loading
    it took (a memory hit takes about nothing)."""

    sha256: str
    source: ModelSource
    seconds: float


@dataclass(frozen=True)
class JobOutput:
    """One stored output image."""

    index: int
    key: str
    node_id: str
    width: int
    height: int
    size: int
    content_type: str = "image/png"


@dataclass(frozen=True)
class JobProgress:
    """The last reported sampler progress."""

    value: int = 0
    max: int = 0
    node_id: str | None = None
    #: what a training reports with its step (loss, lr, steps_per_second, eta_seconds, epoch); carried by the
    #: progress event, not stored in the row
    metrics: dict[str, float] | None = None
    #: what the worker does before the steps (`ProgressPhase`; None while sampling); carried by the event only
    phase: str | None = None
    #: the pinned model's name while the phase is `loading_model`
    model: str | None = None

    def same_step(self, other: JobProgress | None) -> bool:
        """Whether `other` reports the same step (a repeat that makes no new event)."""
        return other is not None and (self.value, self.max, self.node_id, self.phase, self.model) == (
            other.value, other.max, other.node_id, other.phase, other.model)

    def event_data(self) -> dict[str, Any]:
        """The progress event's data (what SSE and WebSocket clients receive)."""
        data: dict[str, Any] = {"value": self.value, "max": self.max, "node_id": self.node_id}
        if self.metrics:
            data["metrics"] = self.metrics
        if self.phase is not None:
            data["phase"] = self.phase
            data["model"] = self.model
        return data

    @classmethod
    def of_event(cls, data: dict[str, Any]) -> JobProgress:
        return cls(value=data["value"], max=data["max"], node_id=data.get("node_id"), metrics=data.get("metrics"),
                   phase=data.get("phase"), model=data.get("model"))


class ProgressPhase(enum.StrEnum):
    """What a running job's worker reports before its sampler steps."""

    LOADING_MODEL = "loading_model"  #: fetching and loading a pinned model the engine does not hold yet


@dataclass(frozen=True)
class Job:
    """A job as the services see it."""

    id: str
    user_id: str
    kind: JobKind
    status: JobStatus
    endpoint: str | None
    spec: JobSpec
    attempts: int
    max_attempts: int
    queued_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: JobProgress = field(default_factory=JobProgress)
    cancel_requested: bool = False
    error: dict[str, Any] | None = None
    outputs: tuple[JobOutput, ...] = ()
    worker_id: str | None = None
    fencing_token: int = 0
    lease_expires_at: datetime | None = None
    request_hash: str | None = None
    idempotency_key: str | None = None
    summary: JobSummary = field(default_factory=JobSummary)
    #: the sequence number of the job's latest stored event (live progress numbers its events after it)
    event_seq: int = 0


@dataclass(frozen=True)
class NewJob:
    """What a submission stores; its kind is its spec's."""

    id: str
    user_id: str
    endpoint: str | None
    spec: JobSpec
    summary: JobSummary
    max_attempts: int
    idempotency_key: str | None
    request_hash: str | None

    @property
    def kind(self) -> JobKind:
        return self.spec.kind


@dataclass(frozen=True)
class JobEvent:
    """A persisted event; `seq` is its SSE id, increasing per job."""

    job_id: str
    seq: int
    type: EventType
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Lease:
    """What a claim grants: the job, the fencing token to present, and when the lease ends."""

    job: Job
    fencing_token: int
    expires_at: datetime
