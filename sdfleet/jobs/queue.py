"""The `JobQueue` protocol: submit, claim with a fenced lease, heartbeat, complete, fail, cancel, reap, events.

`store.jobs.SqlJobQueue` implements it on SQLite and PostgreSQL, `jobs.memory.MemoryJobQueue` in memory (tests);
one contract suite (`tests/integration/store/test_job_queue.py`) runs against all three."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sdfleet.domain.errors import Conflict
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.jobs.records import EventType, Job, JobEvent, JobKind, JobOutput, JobProgress, JobStatus, Lease, NewJob


class StaleLease(Exception):
    """The caller's fencing token is not the job's current one (or the job is no longer running)."""


class DuplicateSubmission(Exception):
    """An Idempotency-Key was used before; `job` is the job it created."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


@dataclass(frozen=True)
class ReapResult:
    """Jobs whose leases had expired: requeued, failed after their last attempt, or cancelled (their owner
    had asked to stop them)."""

    requeued: list[str]
    failed: list[str]
    cancelled: list[str]


class JobQueue(Protocol):
    """The jobs table as a queue. Every method is atomic; a stale fencing token raises StaleLease."""

    # Submission
    def submit(self, new: NewJob, *, now: datetime) -> Job:
        """Queue a job with a fair rank; raises DuplicateSubmission for a reused Idempotency-Key."""
        ...

    # Worker side
    def claim(self, *, worker_id: str, endpoints: list[str], now: datetime, lease_seconds: float,
              max_running_per_user: int | None = None) -> Lease | None:
        """Take the next job for these endpoints and grant a fenced lease (None when none is queued)."""
        ...

    def check_lease(self, job_id: str, *, token: int) -> Job:
        """The job, if `token` is its current lease."""
        ...

    def heartbeat(self, job_id: str, *, token: int, now: datetime, lease_seconds: float,
                  progress: JobProgress | None) -> Job:
        """Extend the lease and record progress; the job tells whether cancel was requested."""
        ...

    def complete(self, job_id: str, *, token: int, outputs: list[JobOutput], now: datetime,
                 info: dict | None = None) -> Job:
        """Record the outputs and finish the job, exactly once."""
        ...

    def fail(self, job_id: str, *, token: int, error: dict, now: datetime) -> Job:
        """Finish the job as failed with `error` ({code, message, …})."""
        ...

    def acknowledge_cancel(self, job_id: str, *, token: int, now: datetime) -> Job:
        """The worker stopped a job whose owner asked to cancel it."""
        ...

    def release(self, job_id: str, *, token: int, now: datetime, reason: str) -> Job:
        """Hand a job back to the queue; the attempt is not counted."""
        ...

    def reap(self, *, now: datetime) -> ReapResult:
        """Requeue jobs with expired leases, fail them after their last attempt, cancel those asked to stop."""
        ...

    # Owner side
    def get(self, job_id: str) -> Job | None: ...

    def list_for_user(self, user_id: str, page: PageRequest, *, status: JobStatus | None = None,
                      kind: JobKind | None = None) -> Page[Job]:
        """The user's jobs, newest first."""
        ...

    def find_for_user(self, user_id: str, *, kind: JobKind | None = None, statuses: tuple[JobStatus, ...] = (),
                      offset: int = 0, limit: int = 200, oldest_first: bool = False) -> list[Job]:
        """A window of the user's jobs in submission order (newest first unless `oldest_first`), filtered by
        kind and statuses (none: all): what ComfyUI's offset-paged lists ask."""
        ...

    def cancel(self, job_id: str, *, now: datetime) -> Job | None:
        """Queued: cancelled at once. Running: flagged. None when the job is gone."""
        ...

    def delete(self, job_id: str) -> None: ...

    def count(self, *, user_id: str | None = None, statuses: tuple[JobStatus, ...],
              endpoint: str | None = None, kind: JobKind | None = None) -> int:
        """How many jobs match (quotas, autoscaler)."""
        ...

    def events_after(self, job_id: str, seq: int, *, limit: int = 500) -> list[JobEvent]:
        """Events with a sequence number above `seq`, in order."""
        ...

    def last_event(self, job_id: str, type_: EventType) -> JobEvent | None:
        """The job's latest event of a type (a training's last progress: loss, lr, speed)."""
        ...

    def unfinished(self, *, kind: JobKind) -> list[Job]:
        """Every queued or running job of a kind (what trainings pin: datasets, base models)."""
        ...

    def running_for_worker(self, worker_id: str) -> list[Job]: ...

    def holds_model(self, worker_id: str, sha256: str) -> bool:
        """Whether a job this worker runs pins the model (workers reach only their jobs' files)."""
        ...


def submit_once(queue: JobQueue, new: NewJob, *, now: datetime) -> Job:
    """Submit `new`; a repeated Idempotency-Key returns the job it made, unless the body differs (409)."""
    try:
        return queue.submit(new, now=now)
    except DuplicateSubmission as dup:
        if dup.job.request_hash != new.request_hash:
            raise Conflict("Idempotency-Key was already used with a different request body",
                           details={"field": "Idempotency-Key", "job_id": dup.job.id}) from None
        return dup.job
