"""The queue as people see it: your jobs' places in line, and everyone's queued and running jobs for
holders of `queue:all`, who may also cancel them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Forbidden, NotFound
from sdfleet.domain.gallery import QueueEntry
from sdfleet.domain.ids import is_valid_id
from sdfleet.domain.permissions import Permission
from sdfleet.jobs.records import Job
from sdfleet.services.notifier import job_topic
from sdfleet.store.gallery import SqlGallery

MAX_ENTRIES = 500


@dataclass(frozen=True)
class QueueView:
    """The entries the caller may see, the totals over everyone, and whether the caller sees everyone's."""

    entries: list[QueueEntry]
    queued: int
    running: int
    everyone: bool


class QueueViewService:
    """Reads the queue in claim order; cancels for the owner or a `queue:all` holder."""

    def __init__(self, *, store: SqlGallery, cancel_job: Callable[[str, datetime], Job],
                 notify: Callable[[str], Any], clock: Callable[[], datetime]) -> None:
        self._store = store
        self._cancel_job = cancel_job
        self._notify = notify
        self._clock = clock

    def view(self, principal: Principal, *, everyone: bool) -> QueueView:
        """Your queued and running jobs with their positions; everyone's with `queue:all`."""
        if everyone and not principal.can(Permission.QUEUE_ALL):
            raise Forbidden("seeing everyone's jobs needs the queue:all permission", details={"field": "scope"})
        entries = self._store.queue(user_id=None if everyone else principal.user_id, limit=MAX_ENTRIES)
        counts = self._store.queue_counts()
        return QueueView(entries=entries, queued=counts["queued"], running=counts["running"], everyone=everyone)

    def cancel(self, principal: Principal, job_id: str) -> Job:
        """Cancel a job of yours, or anyone's with `queue:all` (queued: now; running: at the next step)."""
        owner = self._store.owner_of(job_id) if is_valid_id(job_id) else None
        if owner is None or (owner[0] != principal.user_id and not principal.can(Permission.QUEUE_ALL)):
            raise NotFound(f"inference {job_id!r} not found")
        job = self._store.job(job_id)
        if job.status.finished:
            return job
        job = self._cancel_job(job_id, self._clock())
        self._notify(job_topic(job_id))
        return job
