"""Live progress: what running jobs report between claim and end, kept in memory instead of a commit per step.

`LiveProgress` holds each running job's progress events (numbered after the job's stored events) and the
fencing view of the leases this server knows; other API servers receive them through `publish`/`receive`
(PostgreSQL NOTIFY). `LiveJobQueue` puts it in front of a stored `JobQueue`: heartbeats cost no commit
unless less than half of the lease is left, and readers (SSE, ComfyUI, A1111 `/progress`) see stored and
live events as one sequence. The stored queue persists a job's pending events in the transaction that ends
or requeues it (`SqlJobQueue(unsaved_progress=...)`), so a finished job's history is complete; after a
server crash the stored progress may be older than what clients saw (docs/decisions.md)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.jobs.queue import JobQueue, ReapResult
from sdfleet.jobs.records import EventType, Job, JobEvent, JobKind, JobOutput, JobProgress, JobStatus, Lease, NewJob

#: prefix of the notifier topics that carry live progress between API servers
LIVE_TOPIC = "live:"
MAX_EVENTS_PER_JOB = 512  # a long training keeps its latest steps; the first/last of each node are kept too
MAX_JOBS = 4096


@dataclass
class _Running:
    """One running job as this server knows it."""

    base_seq: int  #: the job's stored event_seq when this server learnt of it
    next_seq: int
    events: list[JobEvent]
    latest: JobProgress | None = None
    cancel_requested: bool = False


class LiveProgress:
    """Progress events of running jobs, in memory, shared with the other API servers through `publish`."""

    def __init__(self, *, publish: Callable[[str], None] | None = None,
                 on_change: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, _Running] = OrderedDict()
        self.publish = publish  #: sends a `live:` topic to the other servers (None: one server)
        self.on_change = on_change  #: wakes this server's readers of a job (SSE, WebSocket)

    def follow(self, job_id: str, *, event_seq: int) -> None:
        """Start (or keep) following a running job whose stored events end at `event_seq`."""
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is None or entry.base_seq < event_seq and not entry.events:
                self._jobs[job_id] = _Running(base_seq=event_seq, next_seq=event_seq + 1, events=[])
            self._jobs.move_to_end(job_id)
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)

    def record(self, job_id: str, progress: JobProgress, *, now: datetime) -> JobEvent | None:
        """A progress report of a followed job: a new event unless it repeats the latest one."""
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is None:
                return None
            if progress.same_step(entry.latest):
                return None
            data = progress.event_data()
            event = JobEvent(job_id=job_id, seq=entry.next_seq, type=EventType.PROGRESS, data=data, created_at=now)
            self._add(entry, event)
        if self.publish is not None:
            self.publish(LIVE_TOPIC + json.dumps({"op": "progress", "job": job_id, "seq": event.seq, "data": data,
                                                  "at": now.isoformat()}, separators=(",", ":")))
        return event

    @staticmethod
    def _add(entry: _Running, event: JobEvent) -> None:
        entry.events.append(event)
        entry.next_seq = max(entry.next_seq, event.seq + 1)
        entry.latest = JobProgress.of_event(event.data)
        if len(entry.events) > MAX_EVENTS_PER_JOB:
            # keep the first and last step of every node (the progress contract), drop the oldest others
            for i, old in enumerate(entry.events):
                if not _milestone(old, entry.events):
                    del entry.events[i]
                    break
            else:
                del entry.events[0]

    def request_cancel(self, job_id: str) -> None:
        """The owner asked to stop the job: the next heartbeat (on any server) says so."""
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is not None:
                entry.cancel_requested = True
        if self.publish is not None:
            self.publish(LIVE_TOPIC + json.dumps({"op": "cancel", "job": job_id}, separators=(",", ":")))

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            entry = self._jobs.get(job_id)
            return entry is not None and entry.cancel_requested

    def events_after(self, job_id: str, seq: int) -> list[JobEvent]:
        with self._lock:
            entry = self._jobs.get(job_id)
            return [] if entry is None else [e for e in entry.events if e.seq > seq]

    def latest(self, job_id: str) -> JobProgress | None:
        with self._lock:
            entry = self._jobs.get(job_id)
            return None if entry is None else entry.latest

    def last_event(self, job_id: str) -> JobEvent | None:
        with self._lock:
            entry = self._jobs.get(job_id)
            return entry.events[-1] if entry is not None and entry.events else None

    def unsaved(self, job_id: str) -> list[JobEvent]:
        """The job's events to store with the transaction that ends or requeues it."""
        with self._lock:
            entry = self._jobs.get(job_id)
            return [] if entry is None else list(entry.events)

    def forget(self, job_id: str, *, tell_others: bool = True) -> None:
        """The job ended or lost its lease here: its events are stored (or dropped with the attempt)."""
        with self._lock:
            self._jobs.pop(job_id, None)
        if tell_others and self.publish is not None:
            self.publish(LIVE_TOPIC + json.dumps({"op": "forget", "job": job_id}, separators=(",", ":")))

    def receive(self, topic: str) -> None:
        """A `live:` topic from another server (or this one's own, echoed back: harmless)."""
        try:
            message = json.loads(topic[len(LIVE_TOPIC):])
            job_id, op = message["job"], message["op"]
        except (ValueError, KeyError, TypeError):
            return
        if op == "progress":
            with self._lock:
                entry = self._jobs.get(job_id)
                if entry is None:
                    seq = int(message["seq"])
                    entry = self._jobs[job_id] = _Running(base_seq=seq - 1, next_seq=seq, events=[])
                if not any(e.seq == message["seq"] for e in entry.events):
                    self._add(entry, JobEvent(job_id=job_id, seq=int(message["seq"]), type=EventType.PROGRESS,
                                              data=message["data"], created_at=datetime.fromisoformat(message["at"])))
                    entry.events.sort(key=lambda e: e.seq)
        elif op == "cancel":
            with self._lock:
                if job_id in self._jobs:
                    self._jobs[job_id].cancel_requested = True
        elif op == "forget":
            with self._lock:
                self._jobs.pop(job_id, None)
        if self.on_change is not None:
            self.on_change(job_id)


def _milestone(event: JobEvent, events: list[JobEvent]) -> bool:
    node, value = event.data.get("node_id"), event.data.get("value", 0)
    same = [e for e in events if e.data.get("node_id") == node]
    return event is same[0] or value >= event.data.get("max", 0)


@dataclass
class _LeaseView:
    """A lease as last stored: while it is current, heartbeats and checks need no database."""

    job: Job
    token: int
    expires_at: datetime


class LiveJobQueue(JobQueue):
    """A stored `JobQueue` whose running jobs' progress lives in `LiveProgress` (see the module docstring)."""

    def __init__(self, stored: JobQueue, live: LiveProgress, *, clock: Callable[[], datetime]) -> None:
        self._stored = stored
        self.live = live
        self._clock = clock
        self._lock = threading.Lock()
        self._leases: dict[str, _LeaseView] = {}

    # Submission
    def submit(self, new: NewJob, *, now: datetime) -> Job:
        return self._stored.submit(new, now=now)

    # Worker side
    def claim(self, *, worker_id: str, endpoints: list[str], now: datetime, lease_seconds: float,
              max_running_per_user: int | None = None) -> Lease | None:
        lease = self._stored.claim(worker_id=worker_id, endpoints=endpoints, now=now, lease_seconds=lease_seconds,
                                   max_running_per_user=max_running_per_user)
        if lease is not None:
            self._remember(lease.job)
        return lease

    def _remember(self, job: Job) -> _LeaseView:
        self.live.follow(job.id, event_seq=job.event_seq)
        if job.cancel_requested:
            self.live.request_cancel(job.id)
        view = _LeaseView(job=job, token=job.fencing_token, expires_at=job.lease_expires_at or self._clock())
        with self._lock:
            self._leases[job.id] = view
            while len(self._leases) > MAX_JOBS:
                self._leases.pop(next(iter(self._leases)))
        return view

    def _view(self, job_id: str, token: int, now: datetime) -> _LeaseView:
        """The lease, from memory while it is unexpired, else from the database (StaleLease when not current)."""
        with self._lock:
            view = self._leases.get(job_id)
        if view is not None and view.token == token and now < view.expires_at:
            return view
        return self._remember(self._stored.check_lease(job_id, token=token))

    def check_lease(self, job_id: str, *, token: int) -> Job:
        return self._overlay(self._view(job_id, token, self._clock()).job)

    def heartbeat(self, job_id: str, *, token: int, now: datetime, lease_seconds: float,
                  progress: JobProgress | None) -> Job:
        """Record progress in memory; write the lease only when less than half of it is left."""
        view = self._view(job_id, token, now)
        if progress is not None:
            self.live.record(job_id, progress, now=now)
        if view.expires_at - now < timedelta(seconds=lease_seconds / 2):
            job = self._stored.heartbeat(job_id, token=token, now=now, lease_seconds=lease_seconds, progress=None)
            if job.cancel_requested:
                self.live.request_cancel(job_id)
            view.job, view.expires_at = job, job.lease_expires_at or now
        return self._overlay(view.job)

    def complete(self, job_id: str, *, token: int, outputs: list[JobOutput], now: datetime,
                 info: dict | None = None) -> Job:
        return self._ended(self._stored.complete(job_id, token=token, outputs=outputs, now=now, info=info))

    def fail(self, job_id: str, *, token: int, error: dict, now: datetime) -> Job:
        return self._ended(self._stored.fail(job_id, token=token, error=error, now=now))

    def acknowledge_cancel(self, job_id: str, *, token: int, now: datetime) -> Job:
        return self._ended(self._stored.acknowledge_cancel(job_id, token=token, now=now))

    def release(self, job_id: str, *, token: int, now: datetime, reason: str) -> Job:
        return self._ended(self._stored.release(job_id, token=token, now=now, reason=reason))

    def _ended(self, job: Job) -> Job:
        with self._lock:
            self._leases.pop(job.id, None)
        self.live.forget(job.id)
        return job

    def reap(self, *, now: datetime) -> ReapResult:
        result = self._stored.reap(now=now)
        for job_id in result.requeued + result.failed + result.cancelled:
            with self._lock:
                self._leases.pop(job_id, None)
            self.live.forget(job_id)
        return result

    # Owner side
    def _overlay(self, job: Job) -> Job:
        if job.status is not JobStatus.RUNNING:
            return job
        latest = self.live.latest(job.id)
        cancel = job.cancel_requested or self.live.cancel_requested(job.id)
        if latest is None and cancel == job.cancel_requested:
            return job
        progress = job.progress if latest is None else replace(latest, metrics=None)
        return replace(job, progress=progress, cancel_requested=cancel)

    def get(self, job_id: str) -> Job | None:
        job = self._stored.get(job_id)
        return None if job is None else self._overlay(job)

    def list_for_user(self, user_id: str, page: PageRequest, *, status: JobStatus | None = None,
                      kind: JobKind | None = None) -> Page[Job]:
        found = self._stored.list_for_user(user_id, page, status=status, kind=kind)
        return replace(found, items=[self._overlay(j) for j in found.items])

    def find_for_user(self, user_id: str, *, kind: JobKind | None = None, statuses: tuple[JobStatus, ...] = (),
                      offset: int = 0, limit: int = 200, oldest_first: bool = False) -> list[Job]:
        return [self._overlay(j) for j in self._stored.find_for_user(
            user_id, kind=kind, statuses=statuses, offset=offset, limit=limit, oldest_first=oldest_first)]

    def cancel(self, job_id: str, *, now: datetime) -> Job | None:
        job = self._stored.cancel(job_id, now=now)
        if job is not None and job.status is JobStatus.RUNNING and job.cancel_requested:
            self.live.request_cancel(job_id)
        return None if job is None else self._overlay(job)

    def delete(self, job_id: str) -> None:
        self._stored.delete(job_id)
        with self._lock:
            self._leases.pop(job_id, None)
        self.live.forget(job_id)

    def count(self, *, user_id: str | None = None, statuses: tuple[JobStatus, ...],
              endpoint: str | None = None, kind: JobKind | None = None) -> int:
        return self._stored.count(user_id=user_id, statuses=statuses, endpoint=endpoint, kind=kind)

    def events_after(self, job_id: str, seq: int, *, limit: int = 500) -> list[JobEvent]:
        """Stored events, then the live ones after them (a stored event wins over a live one of its number)."""
        stored = self._stored.events_after(job_id, seq, limit=limit)
        if len(stored) >= limit:
            return stored
        taken = {e.seq for e in stored}
        live = [e for e in self.live.events_after(job_id, seq) if e.seq not in taken]
        return sorted(stored + live, key=lambda e: e.seq)[:limit]

    def last_event(self, job_id: str, type_: EventType) -> JobEvent | None:
        if type_ is EventType.PROGRESS and (event := self.live.last_event(job_id)) is not None:
            return event
        return self._stored.last_event(job_id, type_)

    def unfinished(self, *, kind: JobKind) -> list[Job]:
        return self._stored.unfinished(kind=kind)

    def running_for_worker(self, worker_id: str) -> list[Job]:
        return self._stored.running_for_worker(worker_id)

    def holds_model(self, worker_id: str, sha256: str) -> bool:
        return self._stored.holds_model(worker_id, sha256)
