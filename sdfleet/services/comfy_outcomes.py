"""What a failed or stopped ComfyUI prompt tells its client: the node concerned, its class, the nodes that ran
before it and (for a failure) the exception and the node's literal inputs.

Records read from the job and its prompt; `sdfleet/api/comfy/outcomes.py` shapes ComfyUI's `execution_error` and
`execution_interrupted` payloads from them (the WebSocket and the history use both). The worker reports the
failing node and `"<ExceptionType>: <message>"`; the rest is derived from the prompt."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdfleet.jobs.records import Job
from sdfleet.jobs.spec import graph_of

TYPED_MESSAGE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*): (?P<message>.*)$", re.DOTALL)


@dataclass(frozen=True)
class PromptStopped:
    """A prompt interrupted while `node_id` ran (None: before any node)."""

    node_id: str | None
    node_type: str | None  #: the node's class_type
    executed: list[str]  #: the nodes it takes its inputs from, transitively (they ran or were cached)


@dataclass(frozen=True)
class PromptFailed(PromptStopped):
    """A prompt that failed at `node_id` (None: a failure outside any node, such as a lost worker)."""

    exception_type: str  #: the exception's class name, or the server's error code
    exception_message: str
    inputs: dict[str, Any]  #: the failing node's literal (unlinked) inputs


def is_link(value: Any) -> bool:
    """Whether a graph input is a link `[source node id, output index]`."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def ancestors(graph: Mapping[str, Any], node_id: str | None) -> list[str]:
    """The nodes `node_id` takes its inputs from, transitively (they ran, or were cached, before it)."""
    if node_id is None or node_id not in graph:
        return []
    seen: list[str] = []
    stack = [node_id]
    while stack:
        inputs = (graph.get(stack.pop()) or {}).get("inputs") or {}
        for value in inputs.values():
            if is_link(value) and value[0] in graph and value[0] not in seen:
                seen.append(value[0])
                stack.append(value[0])
    return sorted(seen, key=lambda n: (len(n), n))


def _node_type(graph: Mapping[str, Any], node_id: str | None) -> str | None:
    return (graph.get(node_id) or {}).get("class_type") if node_id is not None else None


def stopped(job: Job, *, node_id: str | None) -> PromptStopped:
    """The job stopped while `node_id` ran."""
    graph = graph_of(job.spec)
    return PromptStopped(node_id=node_id, node_type=_node_type(graph, node_id), executed=ancestors(graph, node_id))


def failed(job: Job) -> PromptFailed:
    """The job's failure, from the worker's error report and the prompt."""
    graph = graph_of(job.spec)
    error = job.error or {}
    node_id = error.get("node_id")
    message = str(error.get("message") or "the job failed")
    exception_type = str(error.get("code") or "error")
    typed = TYPED_MESSAGE.match(message) if error.get("code") == "node_error" else None
    if typed:
        exception_type, message = typed["type"], typed["message"]
    inputs = (graph.get(node_id) or {}).get("inputs") or {} if node_id is not None else {}
    return PromptFailed(node_id=node_id, node_type=_node_type(graph, node_id), executed=ancestors(graph, node_id),
                        exception_type=exception_type, exception_message=message,
                        inputs={k: v for k, v in inputs.items() if not is_link(v)})
