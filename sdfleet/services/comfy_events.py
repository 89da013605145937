"""The caller's ComfyUI prompts as seen by one WebSocket client, as records.

Upstream sends a prompt's execution messages to the client that submitted it (its `client_id`); this feed
follows the caller's ComfyUI jobs for that client and returns, at each poll, what changed: the number of queued
and running prompts, each new persisted job event, a new preview image of a running prompt.
`sdfleet/api/comfy/messages.py` turns them into ComfyUI's WebSocket messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import NotFound
from sdfleet.jobs.records import EventType, Job, JobEvent
from sdfleet.jobs.spec import GenerateSpec
from sdfleet.services.comfy import ComfyService, prompt_id_of
from sdfleet.services.inference import InferenceService
from sdfleet.services.notifier import job_topic, user_topic

TERMINAL = {EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED}


@dataclass(frozen=True)
class QueueChanged:
    """The caller's queued and running prompts are now `remaining` in number."""

    remaining: int


@dataclass(frozen=True)
class PromptEvent:
    """A persisted event of one of the client's prompts, with the job as it is after it."""

    prompt_id: str
    job: Job
    event: JobEvent

    @property
    def last(self) -> bool:
        """The prompt's last event (the feed stops following it)."""
        return self.event.type in TERMINAL


@dataclass(frozen=True)
class PromptPreview:
    """A new step preview (PNG) of a started prompt."""

    prompt_id: str
    job_id: str
    png: bytes


FeedItem = QueueChanged | PromptEvent | PromptPreview


@dataclass
class _Followed:
    """How far the feed has read one job."""

    prompt_id: str
    seq: int = 0
    started: bool = False
    preview: bytes | None = None


class ComfyPromptFeed:
    """What changed for one client's prompts since the last poll; `poll` is called after each wake-up."""

    def __init__(self, *, comfy: ComfyService, inference: InferenceService, principal: Principal, client_id: str,
                 connected_at: datetime) -> None:
        self._comfy = comfy
        self._inference = inference
        self.principal = principal
        self.client_id = client_id
        self._connected_at = connected_at
        self._followed: dict[str, _Followed] = {}
        self._done: set[str] = set()
        self._remaining: int | None = None

    def topics(self) -> list[str]:
        """Notifier topics that mean something may have changed for this client."""
        return [user_topic(self.principal.user_id)] + [job_topic(job_id) for job_id in self._followed]

    def following(self) -> set[str]:
        """Ids of the jobs the feed follows (unfinished, or finished since the last poll)."""
        return set(self._followed)

    def queue_remaining(self) -> int:
        """How many of the caller's prompts are queued or running (the feed reports changes from this)."""
        self._remaining = self._comfy.queue_remaining(self.principal)
        return self._remaining

    def _mine(self, job: Job) -> bool:
        if not isinstance(job.spec, GenerateSpec):
            return False
        source, client_id = job.spec.source, job.spec.extra.get("client_id")
        if source == "workflow" and client_id is None:  # a run from the API or the web UI, not from an app
            return False
        if source not in ("comfy", "workflow") or client_id not in (None, self.client_id):
            return False
        return not job.status.finished or job.queued_at >= self._connected_at

    def poll(self, *, previews: bool = False) -> list[FeedItem]:
        """What changed since the last poll, in order; with `previews`, a started job's new preview image."""
        for job in self._comfy.recent(self.principal, limit=20):
            if job.id not in self._followed and job.id not in self._done and self._mine(job):
                self._followed[job.id] = _Followed(prompt_id=prompt_id_of(job))
        items: list[FeedItem] = []
        remaining = self._comfy.queue_remaining(self.principal)
        if remaining != self._remaining:
            self._remaining = remaining
            items.append(QueueChanged(remaining))
        for job_id, followed in list(self._followed.items()):
            try:
                events = self._inference.events_after(self.principal, job_id, followed.seq)
                job = self._inference.get(self.principal, job_id)
            except NotFound:  # deleted from the queue or history
                del self._followed[job_id]
                self._done.add(job_id)
                continue
            for event in events:
                followed.seq = event.seq
                followed.started = followed.started or event.type is EventType.STARTED
                item = PromptEvent(prompt_id=followed.prompt_id, job=job, event=event)
                items.append(item)
                if item.last:
                    del self._followed[job_id]
                    self._done.add(job_id)
                    break
            else:
                if followed.started and previews:
                    png = self._inference.preview(self.principal, job_id)
                    if png and png != followed.preview:
                        followed.preview = png
                        items.append(PromptPreview(prompt_id=followed.prompt_id, job_id=job_id, png=png))
        return items
