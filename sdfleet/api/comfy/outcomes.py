"""ComfyUI's `execution_error` and `execution_interrupted` payloads (without their `timestamp`) for a failed or
stopped job, shaped from the records of `services/comfy_outcomes.py`; the WebSocket and the history send them."""

from __future__ import annotations

from typing import Any

from sdfleet.jobs.records import Job
from sdfleet.services.comfy_outcomes import failed, stopped


def interrupted_data(job: Job, *, prompt_id: str, node_id: str | None) -> dict[str, Any]:
    """`execution_interrupted` data: the node running when the job was stopped."""
    found = stopped(job, node_id=node_id)
    return {"prompt_id": prompt_id, "node_id": found.node_id, "node_type": found.node_type,
            "executed": found.executed}


def error_data(job: Job, *, prompt_id: str) -> dict[str, Any]:
    """`execution_error` data: upstream's exception fields (no traceback crosses from the worker); each input as
    the one-item list upstream's executor saw, the outputs so far being the nodes that ran."""
    found = failed(job)
    return {"prompt_id": prompt_id, "node_id": found.node_id, "node_type": found.node_type,
            "executed": found.executed, "exception_message": found.exception_message,
            "exception_type": found.exception_type, "traceback": [],
            "current_inputs": {k: [v] for k, v in found.inputs.items()}, "current_outputs": found.executed}
