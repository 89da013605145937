"""The jobs table as a queue (`JobQueue` on SQLite and PostgreSQL): submit, claim with a fenced lease,
heartbeat, complete, reap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

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
from sdfleet.jobs.spec import JobSummary, spec_from_json
from sdfleet.store.database import Database
from sdfleet.store.outbox import record_job_outcome
from sdfleet.store.tables import JobEventRow, JobOutputRow, JobRow

# The tables themselves, for Core statements (no ORM unit of work, no identity map) on the hot paths
_JOBS, _EVENTS, _OUTPUTS = JobRow.__table__, JobEventRow.__table__, JobOutputRow.__table__


def _progress(row) -> JobProgress:
    return JobProgress(value=row.progress_value, max=row.progress_max, node_id=row.progress_node)


def _job(row, outputs=None) -> Job:
    """A job from its ORM row, or from a Core result row of every column with `outputs` given."""
    return Job(
        id=row.id,
        user_id=row.user_id,
        kind=JobKind(row.kind),
        status=JobStatus(row.status),
        endpoint=row.endpoint,
        spec=spec_from_json(JobKind(row.kind), row.spec),
        summary=JobSummary.from_json(row.summary),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        queued_at=row.queued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        progress=_progress(row),
        cancel_requested=row.cancel_requested,
        error=row.error,
        outputs=tuple(
            JobOutput(index=o.idx, key=o.key, node_id=o.node_id, width=o.width, height=o.height, size=o.size,
                      content_type=o.content_type)
            for o in row.outputs
        ) if outputs is None else tuple(outputs),
        worker_id=row.worker_id,
        fencing_token=row.fencing_token,
        lease_expires_at=row.lease_expires_at,
        request_hash=row.request_hash,
        idempotency_key=row.idempotency_key,
        event_seq=row.event_seq or 0,
    )


class SqlJobQueue:
    """The queue on SQLite or PostgreSQL. Every method is one short transaction."""

    def __init__(self, database: Database, *,
                 unsaved_progress: Callable[[str], list[JobEvent]] | None = None) -> None:
        self._db = database
        #: a running job's progress events held in memory (`jobs.live`), stored by the transaction that ends
        #: or requeues the job
        self._unsaved_progress = unsaved_progress

    # Submission
    def submit(self, new: NewJob, *, now: datetime) -> Job:
        """Insert a queued job with a fair rank; raises DuplicateSubmission for a reused Idempotency-Key."""
        try:
            with self._db.session(write_lock=True) as s:
                if new.idempotency_key is not None:
                    existing = s.scalar(select(JobRow).where(
                        JobRow.user_id == new.user_id, JobRow.idempotency_key == new.idempotency_key))
                    if existing is not None:
                        raise DuplicateSubmission(_job(existing))
                row = JobRow(
                    id=new.id, user_id=new.user_id, kind=new.spec.kind.value, status=JobStatus.QUEUED.value,
                    endpoint=new.endpoint, spec=new.spec.to_json(), summary=new.summary.to_json(),
                    fair_rank=self._fair_rank(s, new.user_id), attempts=0, max_attempts=new.max_attempts,
                    fencing_token=0, cancel_requested=False, progress_value=0, progress_max=0,
                    idempotency_key=new.idempotency_key, request_hash=new.request_hash, event_seq=0,
                    queued_at=now, updated_at=now,
                )
                s.add(row)
                s.flush()
                self._event(s, row, EventType.QUEUED, {"status": "queued"}, now)
                return _job(row)
        except IntegrityError:
            # Two submissions with one key raced on PostgreSQL: the unique constraint picked the winner.
            with self._db.session() as s:
                existing = s.scalar(select(JobRow).where(
                    JobRow.user_id == new.user_id, JobRow.idempotency_key == new.idempotency_key))
            if existing is None:
                raise
            raise DuplicateSubmission(_job(existing)) from None

    @staticmethod
    def _fair_rank(s, user_id: str) -> int:
        # Virtual-time fair queueing: a job ranks after the user's previous job and no earlier than
        # the newest job already started. A newcomer therefore waits behind at most one job per worker.
        # Written as "the top row" rather than max(): SQLite reads a max() with a WHERE by scanning every row
        # (100,000 finished jobs: 44 ms), while both backends walk ix_jobs_rank / ix_jobs_user_rank backwards
        # and stop at the first match (past at most the queued jobs).
        started = s.scalar(select(JobRow.fair_rank).where(JobRow.status != JobStatus.QUEUED.value)
                           .order_by(JobRow.fair_rank.desc()).limit(1))
        mine = s.scalar(select(JobRow.fair_rank).where(JobRow.user_id == user_id)
                        .order_by(JobRow.fair_rank.desc()).limit(1))
        return max(started or 0, (mine + 1) if mine is not None else 0)

    # Worker side
    def claim(self, *, worker_id: str, endpoints: list[str], now: datetime, lease_seconds: float,
              max_running_per_user: int | None = None) -> Lease | None:
        """Atomically take the next job for these endpoints and grant a fenced lease.

        Users already running `max_running_per_user` jobs are skipped until one finishes."""
        expires = now + timedelta(seconds=lease_seconds)
        j = _JOBS.c
        with self._db.session(write_lock=True) as s:
            candidate = select(j.id).where(j.status == JobStatus.QUEUED.value, j.endpoint.in_(endpoints))
            if max_running_per_user is not None:
                busy = (select(j.user_id).where(j.status == JobStatus.RUNNING.value)
                        .group_by(j.user_id).having(func.count() >= max_running_per_user))
                candidate = candidate.where(j.user_id.not_in(busy))
            candidate = (
                candidate
                .order_by(j.fair_rank, j.queued_at, j.id)
                .limit(1)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            # One round trip takes the job and numbers its STARTED event; the job is built from the returned
            # columns (a queued job has no outputs: only completion writes them), and the event is one insert.
            # Core statements on the connection: no ORM unit of work, no identity map.
            conn = s.connection()
            row = conn.execute(
                update(_JOBS)
                .where(j.id == candidate)
                .values(
                    status=JobStatus.RUNNING.value, worker_id=worker_id, lease_expires_at=expires,
                    fencing_token=j.fencing_token + 1, attempts=j.attempts + 1,
                    started_at=func.coalesce(j.started_at, now), updated_at=now,
                    event_seq=func.coalesce(j.event_seq, 0) + 1,
                )
                .returning(*j)
            ).one_or_none()
            if row is None:
                return None
            conn.execute(insert(_EVENTS).values(
                job_id=row.id, seq=row.event_seq, type=EventType.STARTED.value,
                data={"attempt": row.attempts, "worker_id": worker_id}, created_at=now))
            return Lease(job=_job(row, ()), fencing_token=row.fencing_token, expires_at=expires)

    def _held(self, s, job_id: str, token: int) -> JobRow:
        row = s.get(JobRow, job_id, populate_existing=True, with_for_update=not self._db.is_sqlite)
        if row is None or row.status != JobStatus.RUNNING.value or row.fencing_token != token:
            raise StaleLease(job_id)
        return row

    def check_lease(self, job_id: str, *, token: int) -> Job:
        """The job, if `token` is its current lease; else StaleLease."""
        with self._db.session(write_lock=False) as s:
            return _job(self._held(s, job_id, token))

    def heartbeat(self, job_id: str, *, token: int, now: datetime, lease_seconds: float,
                  progress: JobProgress | None) -> Job:
        """Extend the lease and record progress; the returned job tells whether cancel was requested."""
        with self._db.session(write_lock=True) as s:
            row = self._held(s, job_id, token)
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            row.updated_at = now
            if progress is not None and not progress.same_step(_progress(row)):  # a phase is never in the row: an event
                row.progress_value, row.progress_max, row.progress_node = progress.value, progress.max, progress.node_id
                self._event(s, row, EventType.PROGRESS, progress.event_data(), now)
            return _job(row)

    def complete(self, job_id: str, *, token: int, outputs: list[JobOutput], now: datetime,
                 info: dict | None = None) -> Job:
        """Record the outputs and finish the job, exactly once (a stale token is refused)."""
        events = [(EventType.OUTPUT, {"index": o.index, "node_id": o.node_id, "width": o.width, "height": o.height})
                  for o in outputs]
        events.append((EventType.SUCCEEDED, {"outputs": len(outputs)}))
        return self._end(job_id, token, JobStatus.SUCCEEDED, now, events, outputs=outputs, info=info)

    def fail(self, job_id: str, *, token: int, error: dict, now: datetime) -> Job:
        """Finish the job as failed with `error` ({code, message, …})."""
        return self._end(job_id, token, JobStatus.FAILED, now, [(EventType.FAILED, {"error": error})],
                         values={"error": error})

    def acknowledge_cancel(self, job_id: str, *, token: int, now: datetime) -> Job:
        """The worker stopped a job whose owner asked to cancel it."""
        return self._end(job_id, token, JobStatus.CANCELLED, now, [(EventType.CANCELLED, {"while": "running"})])

    def _end(self, job_id: str, token: int, status: JobStatus, now: datetime, events: list[tuple[EventType, dict]],
             *, values: dict | None = None, outputs: list[JobOutput] = (), info: dict | None = None) -> Job:
        """Finish a running job held with `token` in Core statements: one fenced `UPDATE … RETURNING` (no ORM
        load, no read-back), the inserts of its outputs and events, its outbox row. A stale token, or a job no
        longer running, matches no row: StaleLease, and nothing is written (completion happens exactly once)."""
        held = (_JOBS.c.id == job_id, _JOBS.c.fencing_token == token, _JOBS.c.status == JobStatus.RUNNING.value)
        unsaved = self._unsaved_progress(job_id) if self._unsaved_progress is not None else []
        values = dict(values or {})
        with self._db.session(write_lock=True) as s:
            conn, stored = s.connection(), []
            if unsaved:
                # Which held progress events are not stored yet depends on the stored number: read it, locked.
                read = select(_JOBS.c.event_seq).where(*held)
                seq = conn.execute(read if self._db.is_sqlite else read.with_for_update()).one_or_none()
                if seq is None:
                    raise StaleLease(job_id)
                stored = [e for e in unsaved if e.seq > (seq[0] or 0)]
            if stored:
                last = stored[-1]
                values.update(event_seq=last.seq + len(events), progress_value=last.data["value"],
                              progress_max=last.data["max"], progress_node=last.data.get("node_id"))
            else:
                values["event_seq"] = func.coalesce(_JOBS.c.event_seq, 0) + len(events)
            row = conn.execute(
                update(_JOBS).where(*held)
                .values(status=status.value, finished_at=now, updated_at=now, lease_expires_at=None, **values)
                .returning(*_JOBS.c)
            ).one_or_none()
            if row is None:
                raise StaleLease(job_id)
            job = _job(row, outputs)
            if info:
                summary = {**row.summary, "info": info}
                conn.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(summary=summary))
                job = replace(job, summary=JobSummary.from_json(summary))
            if outputs:
                conn.execute(insert(_OUTPUTS), [
                    {"job_id": job_id, "idx": o.index, "key": o.key, "node_id": o.node_id, "width": o.width,
                     "height": o.height, "size": o.size, "content_type": o.content_type} for o in outputs])
            first = row.event_seq - len(events) + 1
            conn.execute(insert(_EVENTS), [
                *({"job_id": job_id, "seq": e.seq, "type": e.type.value, "data": e.data, "created_at": e.created_at}
                  for e in stored),
                *({"job_id": job_id, "seq": first + i, "type": type_.value, "data": data, "created_at": now}
                  for i, (type_, data) in enumerate(events)),
            ])
            # The notification of the outcome commits with it (outbox): never lost, never sent for a rollback.
            record_job_outcome(s, job)
            return job

    def release(self, job_id: str, *, token: int, now: datetime, reason: str) -> Job:
        """Hand a job back to the queue (worker shutting down); the attempt is not counted."""
        with self._db.session(write_lock=True) as s:
            row = self._held(s, job_id, token)
            self._save_progress(s, row)
            row.status = JobStatus.QUEUED.value
            row.worker_id = None
            row.lease_expires_at = None
            row.attempts = max(0, row.attempts - 1)
            row.updated_at = now
            self._event(s, row, EventType.REQUEUED, {"reason": reason}, now)
            return _job(row)

    def reap(self, *, now: datetime) -> ReapResult:
        """Return jobs with expired leases to the queue, or fail them after their last attempt."""
        requeued, failed, cancelled = [], [], []
        with self._db.session(write_lock=True) as s:
            rows = s.scalars(
                select(JobRow)
                .where(JobRow.status == JobStatus.RUNNING.value, JobRow.lease_expires_at < now)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                if row.cancel_requested:
                    self._finish(s, row, JobStatus.CANCELLED, now)
                    self._event(s, row, EventType.CANCELLED, {"while": "lease expired"}, now)
                    cancelled.append(row.id)
                elif row.attempts >= row.max_attempts:
                    row.error = {"code": "lease_expired",
                                 "message": f"the worker stopped answering {row.attempts} time(s); giving up"}
                    self._finish(s, row, JobStatus.FAILED, now)
                    self._event(s, row, EventType.FAILED, {"error": row.error}, now)
                    failed.append(row.id)
                else:
                    self._save_progress(s, row)
                    row.status = JobStatus.QUEUED.value
                    row.worker_id = None
                    row.lease_expires_at = None
                    row.updated_at = now
                    self._event(s, row, EventType.REQUEUED, {"reason": "lease expired", "attempts": row.attempts}, now)
                    requeued.append(row.id)
        return ReapResult(requeued=requeued, failed=failed, cancelled=cancelled)

    # Owner side
    def get(self, job_id: str) -> Job | None:
        with self._db.session(write_lock=False) as s:
            row = s.get(JobRow, job_id)
            return _job(row) if row else None

    def list_for_user(self, user_id: str, page: PageRequest, *, status: JobStatus | None = None,
                      kind: JobKind | None = None) -> Page[Job]:
        """The user's jobs, newest first."""
        with self._db.session(write_lock=False) as s:
            stmt = select(JobRow).where(JobRow.user_id == user_id).order_by(JobRow.id.desc()).limit(page.limit + 1)
            if status is not None:
                stmt = stmt.where(JobRow.status == status.value)
            if kind is not None:
                stmt = stmt.where(JobRow.kind == kind.value)
            if page.after:
                stmt = stmt.where(JobRow.id < str(page.after[0]))
            rows = [_job(r) for r in s.scalars(stmt)]
        return page_from_rows(rows, limit=page.limit, key=lambda j: [j.id])

    def find_for_user(self, user_id: str, *, kind: JobKind | None = None, statuses: tuple[JobStatus, ...] = (),
                      offset: int = 0, limit: int = 200, oldest_first: bool = False) -> list[Job]:
        """A window of the user's jobs in submission order, filtered in SQL (ComfyUI's offset-paged lists)."""
        with self._db.session(write_lock=False) as s:
            stmt = (select(JobRow).where(JobRow.user_id == user_id)
                    .order_by(JobRow.id.asc() if oldest_first else JobRow.id.desc()).offset(offset).limit(limit))
            if kind is not None:
                stmt = stmt.where(JobRow.kind == kind.value)
            if statuses:
                stmt = stmt.where(JobRow.status.in_([x.value for x in statuses]))
            return [_job(r) for r in s.scalars(stmt)]

    def cancel(self, job_id: str, *, now: datetime) -> Job | None:
        """Queued: cancelled at once. Running: flagged; the worker stops at its next step. None when gone."""
        with self._db.session(write_lock=True) as s:
            row = s.get(JobRow, job_id, populate_existing=True, with_for_update=not self._db.is_sqlite)
            if row is None:
                return None
            if row.status == JobStatus.QUEUED.value:
                self._finish(s, row, JobStatus.CANCELLED, now)
                self._event(s, row, EventType.CANCELLED, {"while": "queued"}, now)
            elif row.status == JobStatus.RUNNING.value and not row.cancel_requested:
                row.cancel_requested = True
                row.updated_at = now
            return _job(row)

    def delete(self, job_id: str) -> None:
        with self._db.session(write_lock=True) as s:
            s.execute(delete(JobRow).where(JobRow.id == job_id))

    def count(self, *, user_id: str | None = None, statuses: tuple[JobStatus, ...],
              endpoint: str | None = None, kind: JobKind | None = None) -> int:
        """How many jobs match (quotas, autoscaler)."""
        with self._db.session(write_lock=False) as s:
            stmt = select(func.count()).select_from(JobRow).where(JobRow.status.in_([x.value for x in statuses]))
            if user_id is not None:
                stmt = stmt.where(JobRow.user_id == user_id)
            if endpoint is not None:
                stmt = stmt.where(JobRow.endpoint == endpoint)
            if kind is not None:
                stmt = stmt.where(JobRow.kind == kind.value)
            return s.scalar(stmt) or 0

    def queued_endpoints(self) -> set[str]:
        """The endpoints with at least one queued job (what idle long polls re-check, once per server)."""
        with self._db.session(write_lock=False) as s:
            return {e for e in s.scalars(select(JobRow.endpoint).where(JobRow.status == JobStatus.QUEUED.value)
                                         .group_by(JobRow.endpoint)) if e is not None}

    def events_after(self, job_id: str, seq: int, *, limit: int = 500) -> list[JobEvent]:
        """Events with a sequence number above `seq`, in order."""
        with self._db.session(write_lock=False) as s:
            rows = s.scalars(
                select(JobEventRow)
                .where(JobEventRow.job_id == job_id, JobEventRow.seq > seq)
                .order_by(JobEventRow.seq)
                .limit(limit)
            ).all()
            return [JobEvent(job_id=r.job_id, seq=r.seq, type=EventType(r.type), data=r.data,
                             created_at=r.created_at) for r in rows]

    def last_event(self, job_id: str, type_: EventType) -> JobEvent | None:
        """The job's latest event of a type (a training's last progress: loss, lr, speed)."""
        with self._db.session(write_lock=False) as s:
            r = s.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.type == type_.value)
                          .order_by(JobEventRow.seq.desc()).limit(1)).first()
            return None if r is None else JobEvent(job_id=r.job_id, seq=r.seq, type=EventType(r.type), data=r.data,
                                                   created_at=r.created_at)

    def unfinished(self, *, kind: JobKind) -> list[Job]:
        """Every queued or running job of a kind (what trainings pin: datasets, base models)."""
        with self._db.session(write_lock=False) as s:
            rows = s.scalars(select(JobRow).where(
                JobRow.kind == kind.value,
                JobRow.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))).all()
            return [_job(r) for r in rows]

    def running_for_worker(self, worker_id: str) -> list[Job]:
        with self._db.session(write_lock=False) as s:
            rows = s.scalars(select(JobRow).where(
                and_(JobRow.worker_id == worker_id, JobRow.status == JobStatus.RUNNING.value))).all()
            return [_job(r) for r in rows]

    def holds_model(self, worker_id: str, sha256: str) -> bool:
        """Whether a job this worker runs references the model (workers reach only their jobs' files)."""
        return any(sha256 in {m.sha256 for m in j.spec.models}
                   for j in self.running_for_worker(worker_id))

    # Internals
    def _save_progress(self, s, row: JobRow) -> None:
        """Store the progress events this server holds in memory for the job, in the caller's transaction."""
        if self._unsaved_progress is None:
            return
        for event in self._unsaved_progress(row.id):
            if event.seq <= (row.event_seq or 0):
                continue  # numbered before a stored event (another server's attempt): not ours to store
            s.add(JobEventRow(job_id=row.id, seq=event.seq, type=event.type.value, data=event.data,
                              created_at=event.created_at))
            row.event_seq = event.seq
            row.progress_value, row.progress_max = event.data["value"], event.data["max"]
            row.progress_node = event.data.get("node_id")

    def _finish(self, s, row: JobRow, status: JobStatus, now: datetime) -> None:
        if row.status == JobStatus.RUNNING.value:
            self._save_progress(s, row)
        row.status = status.value
        row.finished_at = now
        row.updated_at = now
        row.lease_expires_at = None
        # The notification of the outcome commits with it (outbox): never lost, never sent for a rollback.
        record_job_outcome(s, _job(row))

    @staticmethod
    def _event(s, row: JobRow, type_: EventType, data: dict, now: datetime) -> None:
        row.event_seq = (row.event_seq or 0) + 1
        s.add(JobEventRow(job_id=row.id, seq=row.event_seq, type=type_.value, data=data, created_at=now))



