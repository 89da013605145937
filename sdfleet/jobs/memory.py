"""`MemoryJobQueue`: the job queue in memory, for tests; it passes the same contract suite as the SQL queue."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.jobs.queue import DuplicateSubmission, ReapResult, StaleLease
from sdfleet.jobs.records import (
    EventType,
    Job,
    JobEvent,
    JobKind,
    JobOutput,
    JobProgress,
    JobStatus,
    Lease,
    NewJob,
)


@dataclass
class _Entry:
    job: Job
    fair_rank: int
    events: list[JobEvent] = field(default_factory=list)


class MemoryJobQueue:
    """A `JobQueue` held in a dict under one lock: the same ordering, fencing and events as SqlJobQueue."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[str, _Entry] = {}

    # Submission
    def submit(self, new: NewJob, *, now: datetime) -> Job:
        with self._lock:
            if new.idempotency_key is not None:
                for entry in self._jobs.values():
                    if entry.job.user_id == new.user_id and entry.job.idempotency_key == new.idempotency_key:
                        raise DuplicateSubmission(entry.job)
            job = Job(id=new.id, user_id=new.user_id, kind=new.kind, status=JobStatus.QUEUED, endpoint=new.endpoint,
                      spec=new.spec, summary=new.summary, attempts=0, max_attempts=new.max_attempts, queued_at=now,
                      request_hash=new.request_hash, idempotency_key=new.idempotency_key)
            self._jobs[job.id] = _Entry(job=job, fair_rank=self._fair_rank(new.user_id))
            self._event(job.id, EventType.QUEUED, {"status": "queued"}, now)
            return job

    def _fair_rank(self, user_id: str) -> int:
        # The SQL queue's virtual-time rule: after the user's previous job, no earlier than the newest started one.
        started = [e.fair_rank for e in self._jobs.values() if e.job.status is not JobStatus.QUEUED]
        mine = [e.fair_rank for e in self._jobs.values() if e.job.user_id == user_id]
        return max(max(started, default=0), max(mine) + 1 if mine else 0)

    # Worker side
    def claim(self, *, worker_id: str, endpoints: list[str], now: datetime, lease_seconds: float,
              max_running_per_user: int | None = None) -> Lease | None:
        with self._lock:
            running: dict[str, int] = {}
            for entry in self._jobs.values():
                if entry.job.status is JobStatus.RUNNING:
                    running[entry.job.user_id] = running.get(entry.job.user_id, 0) + 1
            candidates = [
                e for e in self._jobs.values()
                if e.job.status is JobStatus.QUEUED and e.job.endpoint in endpoints
                and (max_running_per_user is None or running.get(e.job.user_id, 0) < max_running_per_user)
            ]
            if not candidates:
                return None
            entry = min(candidates, key=lambda e: (e.fair_rank, e.job.queued_at, e.job.id))
            expires = now + timedelta(seconds=lease_seconds)
            job = entry.job
            job = self._put(replace(job, status=JobStatus.RUNNING, worker_id=worker_id, lease_expires_at=expires,
                                    fencing_token=job.fencing_token + 1, attempts=job.attempts + 1,
                                    started_at=job.started_at or now))
            self._event(job.id, EventType.STARTED, {"attempt": job.attempts, "worker_id": worker_id}, now)
            return Lease(job=job, fencing_token=job.fencing_token, expires_at=expires)

    def _held(self, job_id: str, token: int) -> Job:
        entry = self._jobs.get(job_id)
        if entry is None or entry.job.status is not JobStatus.RUNNING or entry.job.fencing_token != token:
            raise StaleLease(job_id)
        return entry.job

    def check_lease(self, job_id: str, *, token: int) -> Job:
        with self._lock:
            return self._held(job_id, token)

    def heartbeat(self, job_id: str, *, token: int, now: datetime, lease_seconds: float,
                  progress: JobProgress | None) -> Job:
        with self._lock:
            job = replace(self._held(job_id, token), lease_expires_at=now + timedelta(seconds=lease_seconds))
            if progress is not None and not progress.same_step(job.progress):
                job = replace(job, progress=replace(progress, metrics=None))  # metrics travel in the event only
                self._event(job_id, EventType.PROGRESS, progress.event_data(), now)
            return self._put(job)

    def complete(self, job_id: str, *, token: int, outputs: list[JobOutput], now: datetime,
                 info: dict | None = None) -> Job:
        with self._lock:
            job = replace(self._held(job_id, token), outputs=tuple(outputs))
            if info:
                job = replace(job, summary=replace(job.summary, info=info))
            job = self._finish(job, JobStatus.SUCCEEDED, now)
            for o in outputs:
                self._event(job_id, EventType.OUTPUT, {"index": o.index, "node_id": o.node_id,
                                                       "width": o.width, "height": o.height}, now)
            self._event(job_id, EventType.SUCCEEDED, {"outputs": len(outputs)}, now)
            return job

    def fail(self, job_id: str, *, token: int, error: dict, now: datetime) -> Job:
        with self._lock:
            job = self._finish(replace(self._held(job_id, token), error=error), JobStatus.FAILED, now)
            self._event(job_id, EventType.FAILED, {"error": error}, now)
            return job

    def acknowledge_cancel(self, job_id: str, *, token: int, now: datetime) -> Job:
        with self._lock:
            job = self._finish(self._held(job_id, token), JobStatus.CANCELLED, now)
            self._event(job_id, EventType.CANCELLED, {"while": "running"}, now)
            return job

    def release(self, job_id: str, *, token: int, now: datetime, reason: str) -> Job:
        with self._lock:
            held = self._held(job_id, token)
            job = self._put(replace(held, status=JobStatus.QUEUED, worker_id=None, lease_expires_at=None,
                                    attempts=max(0, held.attempts - 1)))
            self._event(job_id, EventType.REQUEUED, {"reason": reason}, now)
            return job

    def reap(self, *, now: datetime) -> ReapResult:
        requeued, failed, cancelled = [], [], []
        with self._lock:
            expired = [e.job for e in self._jobs.values() if e.job.status is JobStatus.RUNNING
                       and e.job.lease_expires_at is not None and e.job.lease_expires_at < now]
            for job in expired:
                if job.cancel_requested:
                    self._finish(job, JobStatus.CANCELLED, now)
                    self._event(job.id, EventType.CANCELLED, {"while": "lease expired"}, now)
                    cancelled.append(job.id)
                elif job.attempts >= job.max_attempts:
                    error = {"code": "lease_expired",
                             "message": f"the worker stopped answering {job.attempts} time(s); giving up"}
                    self._finish(replace(job, error=error), JobStatus.FAILED, now)
                    self._event(job.id, EventType.FAILED, {"error": error}, now)
                    failed.append(job.id)
                else:
                    self._put(replace(job, status=JobStatus.QUEUED, worker_id=None, lease_expires_at=None))
                    self._event(job.id, EventType.REQUEUED, {"reason": "lease expired", "attempts": job.attempts}, now)
                    requeued.append(job.id)
        return ReapResult(requeued=requeued, failed=failed, cancelled=cancelled)

    # Owner side
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            entry = self._jobs.get(job_id)
            return entry.job if entry else None

    def list_for_user(self, user_id: str, page: PageRequest, *, status: JobStatus | None = None,
                      kind: JobKind | None = None) -> Page[Job]:
        with self._lock:
            jobs = sorted((e.job for e in self._jobs.values() if e.job.user_id == user_id
                           and (status is None or e.job.status is status) and (kind is None or e.job.kind is kind)
                           and (not page.after or e.job.id < str(page.after[0]))),
                          key=lambda j: j.id, reverse=True)
        return page_from_rows(jobs[:page.limit + 1], limit=page.limit, key=lambda j: [j.id])

    def find_for_user(self, user_id: str, *, kind: JobKind | None = None, statuses: tuple[JobStatus, ...] = (),
                      offset: int = 0, limit: int = 200, oldest_first: bool = False) -> list[Job]:
        with self._lock:
            jobs = sorted((e.job for e in self._jobs.values() if e.job.user_id == user_id
                           and (kind is None or e.job.kind is kind) and (not statuses or e.job.status in statuses)),
                          key=lambda j: j.id, reverse=not oldest_first)
        return jobs[offset:offset + limit]

    def cancel(self, job_id: str, *, now: datetime) -> Job | None:
        with self._lock:
            job = self.get(job_id)
            if job is None:
                return None
            if job.status is JobStatus.QUEUED:
                job = self._finish(job, JobStatus.CANCELLED, now)
                self._event(job_id, EventType.CANCELLED, {"while": "queued"}, now)
            elif job.status is JobStatus.RUNNING and not job.cancel_requested:
                job = self._put(replace(job, cancel_requested=True))
            return job

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def count(self, *, user_id: str | None = None, statuses: tuple[JobStatus, ...],
              endpoint: str | None = None, kind: JobKind | None = None) -> int:
        with self._lock:
            return sum(1 for e in self._jobs.values() if e.job.status in statuses
                       and (user_id is None or e.job.user_id == user_id) and (kind is None or e.job.kind is kind)
                       and (endpoint is None or e.job.endpoint == endpoint))

    def events_after(self, job_id: str, seq: int, *, limit: int = 500) -> list[JobEvent]:
        with self._lock:
            entry = self._jobs.get(job_id)
            return [e for e in entry.events if e.seq > seq][:limit] if entry else []

    def last_event(self, job_id: str, type_: EventType) -> JobEvent | None:
        with self._lock:
            entry = self._jobs.get(job_id)
            return next((e for e in reversed(entry.events) if e.type is type_), None) if entry else None

    def unfinished(self, *, kind: JobKind) -> list[Job]:
        with self._lock:
            return [e.job for e in self._jobs.values()
                    if e.job.kind is kind and e.job.status in (JobStatus.QUEUED, JobStatus.RUNNING)]

    def running_for_worker(self, worker_id: str) -> list[Job]:
        with self._lock:
            return [e.job for e in self._jobs.values()
                    if e.job.worker_id == worker_id and e.job.status is JobStatus.RUNNING]

    def holds_model(self, worker_id: str, sha256: str) -> bool:
        return any(sha256 in {m.sha256 for m in j.spec.models} for j in self.running_for_worker(worker_id))

    # Internals
    def _put(self, job: Job) -> Job:
        self._jobs[job.id].job = job
        return job

    def _finish(self, job: Job, status: JobStatus, now: datetime) -> Job:
        return self._put(replace(job, status=status, finished_at=now, lease_expires_at=None))

    def _event(self, job_id: str, type_: EventType, data: dict, now: datetime) -> None:
        entry = self._jobs[job_id]
        entry.events.append(JobEvent(job_id=job_id, seq=len(entry.events) + 1, type=type_, data=data,
                                     created_at=now))
