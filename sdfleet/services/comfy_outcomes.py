"""ComfyUI's `execution_error` and `execution_interrupted` payloads for a failed or cancelled job.

Shared by the WebSocket session and the history; the worker reports the failing node and
`"<ExceptionType>: <message>"`, the rest is derived from the prompt."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sdfleet.jobs.records import Job
from sdfleet.jobs.spec import graph_of

TYPED_MESSAGE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*): (?P<message>.*)$", re.DOTALL)


def _is_link(value: Any) -> bool:
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
            if _is_link(value) and value[0] in graph and value[0] not in seen:
                seen.append(value[0])
                stack.append(value[0])
    return sorted(seen, key=lambda n: (len(n), n))


def _node_type(graph: Mapping[str, Any], node_id: str | None) -> str | None:
    return (graph.get(node_id) or {}).get("class_type") if node_id is not None else None


def interrupted_data(job: Job, *, prompt_id: str, node_id: str | None) -> dict[str, Any]:
    """`execution_interrupted` data: the node running when the job was stopped."""
    graph = graph_of(job.spec)
    return {"prompt_id": prompt_id, "node_id": node_id, "node_type": _node_type(graph, node_id),
            "executed": ancestors(graph, node_id)}


def error_data(job: Job, *, prompt_id: str) -> dict[str, Any]:
    """`execution_error` data from the worker's error report and the prompt."""
    graph = graph_of(job.spec)
    error = job.error or {}
    node_id = error.get("node_id")
    message = str(error.get("message") or "the job failed")
    exception_type = str(error.get("code") or "error")
    typed = TYPED_MESSAGE.match(message) if error.get("code") == "node_error" else None
    if typed:
        exception_type, message = typed["type"], typed["message"]
    inputs = (graph.get(node_id) or {}).get("inputs") or {} if node_id is not None else {}
    executed = ancestors(graph, node_id)
    return {"prompt_id": prompt_id, "node_id": node_id, "node_type": _node_type(graph, node_id),
            "executed": executed, "exception_message": message, "exception_type": exception_type,
            "traceback": [], "current_inputs": {k: [v] for k, v in inputs.items() if not _is_link(v)},
            "current_outputs": executed}

