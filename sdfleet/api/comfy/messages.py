"""ComfyUI's WebSocket messages for one connected client: `status`, `execution_start`, `execution_cached`,
`executing`, `progress`, `progress_state`, `executed`, `execution_success`, `execution_error`,
`execution_interrupted`, and the binary preview frame — shaped from the records of
`services/comfy_events.py` (the client's prompts, their job events and previews)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sdfleet.api.comfy.outcomes import error_data, interrupted_data
from sdfleet.api.comfy.wire import images_by_node
from sdfleet.jobs.records import EventType, JobEvent
from sdfleet.services.comfy_events import ComfyPromptFeed, FeedItem, PromptEvent, PromptPreview, QueueChanged

PREVIEW_IMAGE_WITH_METADATA = 4  # upstream's BinaryEventTypes.PREVIEW_IMAGE_WITH_METADATA
Message = dict[str, Any] | bytes


def preview_frame(png: bytes, *, node_id: str | None, prompt_id: str) -> bytes:
    """Upstream's binary preview: `>I 4`, `>I len(meta)`, meta JSON, then the PNG."""
    meta = json.dumps({"node_id": node_id, "display_node_id": node_id, "parent_node_id": None,
                       "real_node_id": node_id, "prompt_id": prompt_id, "image_type": "image/png"}).encode()
    return struct.pack(">I", PREVIEW_IMAGE_WITH_METADATA) + struct.pack(">I", len(meta)) + meta + png


@dataclass
class _Told:
    """What the client has been told about one prompt."""

    prompt_id: str
    node: str | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: bool = False


class ComfyEventSession:
    """The messages one WebSocket client should receive next; `poll` is called after each wake-up."""

    def __init__(self, feed: ComfyPromptFeed, *, clock: Callable[[], datetime]) -> None:
        self._feed = feed
        self._clock = clock
        self._told: dict[str, _Told] = {}
        self.supports_preview_metadata = False  #: the client's feature flag: binary preview frames wanted

    @property
    def client_id(self) -> str:
        return self._feed.client_id

    def topics(self) -> list[str]:
        """Notifier topics that mean something may have changed for this client."""
        return self._feed.topics()

    def status(self) -> dict[str, Any]:
        """The `status` message (queue size of this user; `sid` is the client id)."""
        return self._status(self._feed.queue_remaining())

    def _status(self, remaining: int) -> dict[str, Any]:
        return {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}},
                                           "sid": self.client_id}}

    def poll(self) -> list[Message]:
        """New messages since the last poll, in order."""
        messages: list[Message] = []
        for item in self._feed.poll(previews=self.supports_preview_metadata):
            messages += self._translate(item)
        following = self._feed.following()
        self._told = {job_id: told for job_id, told in self._told.items() if job_id in following}
        return messages

    def _translate(self, item: FeedItem) -> list[Message]:
        if isinstance(item, QueueChanged):
            return [self._status(item.remaining)]
        if isinstance(item, PromptPreview):
            told = self._told.setdefault(item.job_id, _Told(prompt_id=item.prompt_id))
            return [preview_frame(item.png, node_id=told.node, prompt_id=told.prompt_id)]
        return list(self._event(item))

    def _event(self, item: PromptEvent) -> list[dict[str, Any]]:
        told = self._told.setdefault(item.job.id, _Told(prompt_id=item.prompt_id))
        job, event = item.job, item.event
        if event.type is EventType.STARTED:
            return self._start(told)
        if event.type is EventType.PROGRESS:
            return self._progress(event, told)
        if event.type is EventType.SUCCEEDED:
            return self._succeeded(item, told)
        if event.type is EventType.FAILED:
            data = error_data(job, prompt_id=told.prompt_id)
            return self._start(told) + [{"type": "execution_error", "data": {**data, "timestamp": self._stamp()}},
                                        self._executing(told, None)]
        if event.type is EventType.CANCELLED:
            if not told.started:  # removed from the queue before it ran: upstream says nothing
                return []
            data = interrupted_data(job, prompt_id=told.prompt_id, node_id=told.node or job.progress.node_id)
            return [{"type": "execution_interrupted", "data": {**data, "timestamp": self._stamp()}},
                    self._executing(told, None)]
        return []

    def _stamp(self) -> int:
        return int(self._clock().timestamp() * 1000)

    def _executing(self, told: _Told, node: str | None) -> dict[str, Any]:
        return {"type": "executing", "data": {"node": node, "display_node": node, "prompt_id": told.prompt_id}}

    def _start(self, told: _Told) -> list[dict[str, Any]]:
        """`execution_start` and an empty `execution_cached`, once per prompt (the worker reports its cache hits
        at the end)."""
        if told.started:
            return []
        told.started = True
        pid = told.prompt_id
        return [{"type": "execution_start", "data": {"prompt_id": pid, "timestamp": self._stamp()}},
                {"type": "execution_cached", "data": {"nodes": [], "prompt_id": pid, "timestamp": self._stamp()}}]

    def _node_state(self, told: _Told, node: str, *, value: int, maximum: int, state: str) -> None:
        told.nodes[node] = {"value": value, "max": maximum, "state": state, "node_id": node,
                            "prompt_id": told.prompt_id, "display_node_id": node, "parent_node_id": None,
                            "real_node_id": node}

    def _progress(self, event: JobEvent, told: _Told) -> list[dict[str, Any]]:
        node = event.data.get("node_id")
        value, maximum = int(event.data.get("value") or 0), int(event.data.get("max") or 0)
        messages = []
        if node is not None and node != told.node:
            if told.node is not None and told.node in told.nodes:
                told.nodes[told.node]["state"] = "finished"
            told.node = node
            messages.append(self._executing(told, node))
        if node is None:
            return messages
        self._node_state(told, node, value=value, maximum=maximum, state="running")
        messages.append({"type": "progress", "data": {"value": value, "max": maximum,
                                                      "prompt_id": told.prompt_id, "node": node}})
        messages.append({"type": "progress_state", "data": {"prompt_id": told.prompt_id,
                                                            "nodes": {k: dict(v) for k, v in told.nodes.items()}}})
        return messages

    def _succeeded(self, item: PromptEvent, told: _Told) -> list[dict[str, Any]]:
        pid = told.prompt_id
        info = item.job.summary.info or {}
        messages: list[dict[str, Any]] = []
        if not told.started:
            told.started = True
            messages.append({"type": "execution_start", "data": {"prompt_id": pid, "timestamp": self._stamp()}})
        cached = [str(n) for n in info.get("cached") or []]
        if cached:
            messages.append({"type": "execution_cached",
                             "data": {"nodes": cached, "prompt_id": pid, "timestamp": self._stamp()}})
        for node in told.nodes.values():
            node["state"] = "finished"
        for node, output in images_by_node(item.job).items():
            if node != told.node:
                told.node = node
                messages.append(self._executing(told, node))
            messages.append({"type": "executed", "data": {"node": node, "display_node": node, "output": output,
                                                          "prompt_id": pid}})
        # upstream: the executor's `execution_success`, then the queue worker's `executing {node: null}`
        messages.append({"type": "execution_success", "data": {"prompt_id": pid, "timestamp": self._stamp()}})
        messages.append(self._executing(told, None))
        return messages
