"""Job events as ComfyUI WebSocket messages, for one connected client.

Upstream sends a prompt's execution messages to the client that submitted it (its `client_id`); this
session follows the caller's ComfyUI jobs for that client and turns the persisted job events into
`execution_start`, `executing`, `progress`, `progress_state`, `executed`, `execution_success`, … ."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import NotFound
from sdfleet.jobs.records import EventType, Job, JobEvent
from sdfleet.jobs.spec import GenerateSpec
from sdfleet.services.comfy import ComfyService, images_by_node, prompt_id_of
from sdfleet.services.comfy_outcomes import error_data, interrupted_data
from sdfleet.services.inference import InferenceService
from sdfleet.services.notifier import job_topic, user_topic

PREVIEW_IMAGE_WITH_METADATA = 4  # upstream's BinaryEventTypes.PREVIEW_IMAGE_WITH_METADATA
TERMINAL = {EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED}
Message = dict[str, Any] | bytes


def preview_frame(png: bytes, *, node_id: str | None, prompt_id: str) -> bytes:
    """Upstream's binary preview: `>I 4`, `>I len(meta)`, meta JSON, then the PNG."""
    meta = json.dumps({"node_id": node_id, "display_node_id": node_id, "parent_node_id": None,
                       "real_node_id": node_id, "prompt_id": prompt_id, "image_type": "image/png"}).encode()
    return struct.pack(">I", PREVIEW_IMAGE_WITH_METADATA) + struct.pack(">I", len(meta)) + meta + png


@dataclass
class _Followed:
    """What this session has already told the client about one job."""

    prompt_id: str
    seq: int = 0
    node: str | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    preview: bytes | None = None
    started: bool = False


class ComfyEventSession:
    """The messages one WebSocket client should receive next; `poll` is called after each wake-up."""

    def __init__(self, *, comfy: ComfyService, inference: InferenceService, principal: Principal, client_id: str,
                 connected_at: datetime, clock: Callable[[], datetime]) -> None:
        self._comfy = comfy
        self._inference = inference
        self.principal = principal
        self.client_id = client_id
        self._connected_at = connected_at
        self._clock = clock
        self._followed: dict[str, _Followed] = {}
        self._done: set[str] = set()
        self._remaining: int | None = None
        self.supports_preview_metadata = False

    def topics(self) -> list[str]:
        """Notifier topics that mean something may have changed for this client."""
        return [user_topic(self.principal.user_id)] + [job_topic(job_id) for job_id in self._followed]

    def status(self) -> dict[str, Any]:
        """The `status` message (queue size of this user; `sid` is the client id)."""
        self._remaining = self._comfy.queue_remaining(self.principal)
        return {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": self._remaining}},
                                           "sid": self.client_id}}

    def _mine(self, job: Job) -> bool:
        if not isinstance(job.spec, GenerateSpec):
            return False
        source, client_id = job.spec.source, job.spec.extra.get("client_id")
        if source == "workflow" and client_id is None:  # a run from the API or the web UI, not from an app
            return False
        if source not in ("comfy", "workflow") or client_id not in (None, self.client_id):
            return False
        return not job.status.finished or job.queued_at >= self._connected_at

    def poll(self) -> list[Message]:
        """New messages since the last poll, in order."""
        for job in self._comfy.recent(self.principal, limit=20):
            if job.id not in self._followed and job.id not in self._done and self._mine(job):
                self._followed[job.id] = _Followed(prompt_id=prompt_id_of(job))
        messages: list[Message] = []
        remaining = self._comfy.queue_remaining(self.principal)
        if remaining != self._remaining:
            messages.append(self.status())
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
                messages += self._translate(job, event, followed)
                if event.type in TERMINAL:
                    del self._followed[job_id]
                    self._done.add(job_id)
                    break
            else:
                if followed.started and self.supports_preview_metadata:
                    png = self._inference.preview(self.principal, job_id)
                    if png and png != followed.preview:
                        followed.preview = png
                        messages.append(preview_frame(png, node_id=followed.node, prompt_id=followed.prompt_id))
        return messages

    def _stamp(self) -> int:
        return int(self._clock().timestamp() * 1000)

    def _executing(self, followed: _Followed, node: str | None) -> dict[str, Any]:
        return {"type": "executing", "data": {"node": node, "display_node": node, "prompt_id": followed.prompt_id}}

    def _start(self, followed: _Followed) -> list[dict[str, Any]]:
        """`execution_start` and an empty `execution_cached`, once per job (the worker reports its cache hits at
        the end)."""
        if followed.started:
            return []
        followed.started = True
        pid = followed.prompt_id
        return [{"type": "execution_start", "data": {"prompt_id": pid, "timestamp": self._stamp()}},
                {"type": "execution_cached", "data": {"nodes": [], "prompt_id": pid, "timestamp": self._stamp()}}]

    def _translate(self, job: Job, event: JobEvent, followed: _Followed) -> list[dict[str, Any]]:
        pid = followed.prompt_id
        if event.type is EventType.STARTED:
            return self._start(followed)
        if event.type is EventType.PROGRESS:
            return self._progress(event, followed)
        if event.type is EventType.SUCCEEDED:
            return self._succeeded(job, followed)
        if event.type is EventType.FAILED:
            messages = self._start(followed)
            data = error_data(job, prompt_id=pid)
            return messages + [{"type": "execution_error", "data": {**data, "timestamp": self._stamp()}},
                               self._executing(followed, None)]
        if event.type is EventType.CANCELLED:
            if not followed.started:  # removed from the queue before it ran: upstream says nothing
                return []
            data = interrupted_data(job, prompt_id=pid, node_id=followed.node or job.progress.node_id)
            return [{"type": "execution_interrupted", "data": {**data, "timestamp": self._stamp()}},
                    self._executing(followed, None)]
        return []

    def _node_state(self, followed: _Followed, node: str, *, value: int, maximum: int, state: str) -> None:
        followed.nodes[node] = {"value": value, "max": maximum, "state": state, "node_id": node,
                                "prompt_id": followed.prompt_id, "display_node_id": node, "parent_node_id": None,
                                "real_node_id": node}

    def _progress(self, event: JobEvent, followed: _Followed) -> list[dict[str, Any]]:
        node = event.data.get("node_id")
        value, maximum = int(event.data.get("value") or 0), int(event.data.get("max") or 0)
        messages = []
        if node is not None and node != followed.node:
            if followed.node is not None and followed.node in followed.nodes:
                followed.nodes[followed.node]["state"] = "finished"
            followed.node = node
            messages.append(self._executing(followed, node))
        if node is None:
            return messages
        self._node_state(followed, node, value=value, maximum=maximum, state="running")
        messages.append({"type": "progress", "data": {"value": value, "max": maximum,
                                                      "prompt_id": followed.prompt_id, "node": node}})
        messages.append({"type": "progress_state", "data": {"prompt_id": followed.prompt_id,
                                                            "nodes": {k: dict(v) for k, v in followed.nodes.items()}}})
        return messages

    def _succeeded(self, job: Job, followed: _Followed) -> list[dict[str, Any]]:
        pid = followed.prompt_id
        info = job.summary.info or {}
        messages: list[dict[str, Any]] = []
        if not followed.started:
            followed.started = True
            messages.append({"type": "execution_start", "data": {"prompt_id": pid, "timestamp": self._stamp()}})
        cached = [str(n) for n in info.get("cached") or []]
        if cached:
            messages.append({"type": "execution_cached",
                             "data": {"nodes": cached, "prompt_id": pid, "timestamp": self._stamp()}})
        for node in followed.nodes.values():
            node["state"] = "finished"
        for node, output in images_by_node(job).items():
            if node != followed.node:
                followed.node = node
                messages.append(self._executing(followed, node))
            messages.append({"type": "executed", "data": {"node": node, "display_node": node, "output": output,
                                                          "prompt_id": pid}})
        # upstream: the executor's `execution_success`, then the queue worker's `executing {node: null}`
        messages.append({"type": "execution_success", "data": {"prompt_id": pid, "timestamp": self._stamp()}})
        messages.append(self._executing(followed, None))
        return messages
