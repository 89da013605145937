"""ComfyUI's JSON shapes of the records `ComfyService` returns: a rejected prompt's 400 body, queue items,
history entries, `/jobs` items, `/system_stats` (the WebSocket's messages are shaped by `messages.py`, the
failure payloads both send by `outcomes.py`)."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from collections.abc import Mapping
from typing import Any

from sdfleet.api.comfy.outcomes import error_data, interrupted_data
from sdfleet.domain.errors import InvalidInput
from sdfleet.domain.workers import WorkerRecord
from sdfleet.jobs.records import Job, JobStatus
from sdfleet.jobs.spec import graph_of
from sdfleet.services.comfy import ComfyPrompt, PromptPage, PromptQueue, PromptRejected, output_filename

COMFYUI_VERSION = "0.3.60"  # the server API level sdfleet answers as
#: ComfyUI's `/jobs` status names
JOB_STATES = {
    JobStatus.QUEUED: "pending",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def _ms(moment) -> int:
    return int(moment.timestamp() * 1000)


# Prompts
def prompt_rejected(rejected: PromptRejected) -> dict[str, Any]:
    """POST /prompt's 400 body: `invalid_prompt` for the prompt as a whole, else
    `prompt_outputs_failed_validation` with the problems of each node."""
    if not rejected.nodes:
        return {"error": {"type": "invalid_prompt", "message": rejected.message, "details": rejected.message,
                          "extra_info": {}}, "node_errors": {}}
    node_errors = {
        node_id: {"errors": [{"type": p.type, "message": p.message, "details": p.input_name or "",
                              "extra_info": {"input_name": p.input_name}} for p in node.problems],
                  "dependent_outputs": node.dependent_outputs, "class_type": node.class_type}
        for node_id, node in rejected.nodes.items()}
    return {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": "", "extra_info": {}}, "node_errors": node_errors}


def images_by_node(job: Job) -> dict[str, dict[str, list[dict[str, str]]]]:
    """ComfyUI's `outputs` of a finished job: images per output node."""
    outputs: dict[str, dict[str, list[dict[str, str]]]] = {}
    for output in job.outputs:
        outputs.setdefault(output.node_id, {"images": []})["images"].append(
            {"filename": output_filename(job.id, output.index), "subfolder": "", "type": "output"})
    return outputs


# Queue and history
def queue_item(prompt: ComfyPrompt) -> list[Any]:
    """ComfyUI's `[number, prompt_id, prompt, extra_data, outputs_to_execute]`."""
    return [prompt.number, prompt.prompt_id, dict(graph_of(prompt.job.spec)), prompt.extra_data,
            prompt.outputs_to_execute]


def queue(found: PromptQueue) -> dict[str, list]:
    """GET /queue."""
    return {"queue_running": [queue_item(p) for p in found.running],
            "queue_pending": [queue_item(p) for p in found.pending]}


def history_entry(prompt: ComfyPrompt) -> dict[str, Any]:
    """One prompt's history: prompt, outputs per node, status and messages."""
    job, pid = prompt.job, prompt.prompt_id
    ok = job.status is JobStatus.SUCCEEDED
    timestamp = _ms(job.finished_at or job.queued_at)
    messages: list[list[Any]] = [["execution_start", {"prompt_id": pid, "timestamp": _ms(job.started_at or
                                                                                         job.queued_at)}]]
    if ok:
        messages.append(["execution_success", {"prompt_id": pid, "timestamp": timestamp}])
    elif job.status is JobStatus.FAILED:
        messages.append(["execution_error", {**error_data(job, prompt_id=pid), "timestamp": timestamp}])
    else:
        messages.append(["execution_interrupted", {
            **interrupted_data(job, prompt_id=pid, node_id=job.progress.node_id), "timestamp": timestamp}])
    outputs = images_by_node(job)
    return {
        "prompt": queue_item(prompt),
        "outputs": outputs,
        "status": {"status_str": "success" if ok else "error", "completed": ok, "messages": messages},
        "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in outputs},
    }


def history(prompts: list[ComfyPrompt]) -> dict[str, Any]:
    """GET /history and /history/{id}: entries by prompt id, in the given order."""
    return {p.prompt_id: history_entry(p) for p in prompts}


# Jobs API
def job_statuses(names: list[str]) -> tuple[JobStatus, ...]:
    """The job statuses of ComfyUI's `/jobs?status=` names (none: all)."""
    by_name = {name: status for status, name in JOB_STATES.items()}
    for name in names:
        if name not in by_name:
            raise InvalidInput(f"status must be among {', '.join(sorted(by_name))}, got {name!r}", field="status")
    return tuple(s for s, name in JOB_STATES.items() if not names or name in names)


def job_summary(prompt: ComfyPrompt) -> dict[str, Any]:
    """One item of GET /jobs."""
    job = prompt.job
    item: dict[str, Any] = {
        "id": prompt.prompt_id, "status": JOB_STATES[job.status], "priority": prompt.number,
        "create_time": prompt.number, "outputs_count": len(job.outputs),
        "previewable_outputs_count": len(job.outputs),
    }
    if job.started_at:
        item["execution_start_time"] = _ms(job.started_at)
    if job.finished_at:
        item["execution_end_time"] = _ms(job.finished_at)
    if job.outputs:
        first = job.outputs[0]
        item["preview_output"] = {"filename": output_filename(job.id, first.index), "subfolder": "",
                                  "type": "output", "nodeId": first.node_id, "mediaType": "images"}
    if job.status is JobStatus.FAILED and job.error:
        item["execution_error"] = {"node_id": job.error.get("node_id"),
                                   "exception_message": job.error.get("message", "")}
    workflow = (prompt.extra_data.get("extra_pnginfo") or {}).get("workflow")
    if isinstance(workflow, Mapping) and isinstance(workflow.get("id"), str):
        item["workflow_id"] = workflow["id"]
    return item


def jobs(page: PromptPage) -> dict[str, Any]:
    """GET /jobs."""
    return {"jobs": [job_summary(p) for p in page.prompts],
            "pagination": {"offset": page.offset, "limit": page.limit, "total": page.total,
                           "has_more": page.offset + page.limit < page.total}}


def job(prompt: ComfyPrompt) -> dict[str, Any]:
    """GET /jobs/{id}: the summary plus outputs and the workflow."""
    pnginfo = prompt.extra_data.get("extra_pnginfo")
    return {**job_summary(prompt), "outputs": images_by_node(prompt.job),
            "workflow": {"prompt": dict(graph_of(prompt.job.spec)),
                         "extra_data": {"extra_pnginfo": pnginfo} if pnginfo else {}}}


# Files and the server
def uploaded(name: str) -> dict[str, str]:
    """POST /upload/image and /upload/mask."""
    return {"name": name, "subfolder": "", "type": "input"}


def system_stats(workers: list[WorkerRecord]) -> dict[str, Any]:
    """GET /system_stats: this server, and the fleet's workers as devices."""
    try:  # the installed version, without importing torch into the API process
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - torch is a dependency
        torch_version = ""
    devices = [{"name": f"{w.name} ({w.device or 'unknown'})", "type": (w.device or "cpu").split(":")[0],
                "index": index, "vram_total": 0, "vram_free": 0, "torch_vram_total": 0, "torch_vram_free": 0}
               for index, w in enumerate(workers)]
    return {"system": {"os": sys.platform, "python_version": sys.version, "embedded_python": False,
                       "comfyui_version": COMFYUI_VERSION, "pytorch_version": torch_version,
                       "required_frontend_version": "", "installed_templates_version": "",
                       "ram_total": 0, "ram_free": 0, "argv": ["sdfleet"], "hostname": platform.node()},
            "devices": devices}
