"""The notification outbox: events written in the same transaction as the change they announce.

A state change and its event commit together or not at all, so a crash can neither announce something
that did not happen nor lose the announcement of something that did. The delivery worker fans events
out to subscriptions later (`sdfleet/store/notification_deliveries.py`).

Emitting is one call inside the transaction that changes the state:

    emit(session, EventType.TRAINING_SUCCEEDED, user_id=job.user_id, data={"job_id": job.id}, now=now)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from sdfleet.domain.ids import new_id
from sdfleet.domain.notifications import JOB_EVENTS, EventType, NotificationEvent
from sdfleet.jobs.records import Job
from sdfleet.store.database import Database
from sdfleet.store.tables import NotificationEventRow

#: set on a session whose transaction wrote an event, so its commit wakes the delivery worker
_PENDING = "sdfleet.outbox.pending"


def wake_delivery_after_commit(session: Session) -> None:
    """Make this transaction's commit wake the delivery worker (it wrote an event or a due delivery)."""
    session.info[_PENDING] = True


def record_event(session: Session, event: NotificationEvent) -> NotificationEvent:
    """Add `event` to the outbox inside the caller's transaction."""
    session.add(NotificationEventRow(
        id=event.id, type=event.type.value, user_id=event.user_id, endpoint=event.endpoint,
        duration_seconds=event.duration_seconds, data=event.data, subscription_id=event.subscription_id,
        fanned_out=False, created_at=event.occurred_at,
    ))
    wake_delivery_after_commit(session)
    return event


def emit(session: Session, type_: EventType, *, now: datetime, user_id: str | None = None,
         data: dict[str, Any] | None = None, endpoint: str | None = None,
         duration_seconds: float | None = None, subscription_id: str | None = None) -> NotificationEvent:
    """Build and record one event (the one-line call for any state change)."""
    return record_event(session, NotificationEvent(
        id=new_id(), type=type_, occurred_at=now, user_id=user_id, endpoint=endpoint,
        duration_seconds=duration_seconds, data=data or {}, subscription_id=subscription_id))


def job_event_data(job: Job) -> dict[str, Any]:
    """What a job event carries: identity, prompt, status, timing, outputs (object keys) and error."""
    summary = job.summary
    return {
        "job_id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "endpoint": job.endpoint,
        "prompt": summary.prompt,
        "model": summary.model,
        "task": summary.task,
        "queued_at": job.queued_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "outputs": [{"index": o.index, "key": o.key, "width": o.width, "height": o.height,
                     "content_type": o.content_type} for o in job.outputs],
        "error": job.error,
        "webhook": summary.webhook,
    }


def record_job_outcome(session: Session, job: Job) -> NotificationEvent | None:
    """Record the event of a job that just finished (succeeded, failed, cancelled), if its kind has one."""
    type_ = JOB_EVENTS.get((job.kind.value, job.status.value))
    if type_ is None or job.finished_at is None:
        return None
    duration = (job.finished_at - job.queued_at).total_seconds()
    return emit(session, type_, now=job.finished_at, user_id=job.user_id, endpoint=job.endpoint,
                duration_seconds=round(duration, 3), data=job_event_data(job))


def watch_commits(database: Database, callback: Callable[[], None]) -> None:
    """Call `callback` after every commit that wrote an event (wakes this process's delivery worker)."""

    def after_commit(session: Session) -> None:
        if session.info.pop(_PENDING, False):
            callback()

    def after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)

    database.on_session_event("after_commit", after_commit)
    database.on_session_event("after_rollback", after_rollback)
