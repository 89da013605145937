"""ComfyUI's `execution_error` / `execution_interrupted` payloads built from a job."""

from __future__ import annotations

from datetime import UTC, datetime

from sdfleet.api.comfy.outcomes import error_data, interrupted_data
from sdfleet.jobs.records import Job, JobKind, JobStatus
from sdfleet.jobs.spec import GenerateSpec
from sdfleet.services.comfy_outcomes import ancestors

GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "model": ["4", 0], "positive": ["6", 0],
                                               "negative": ["6", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "10": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}},
}


def _job(error: dict | None, status: JobStatus = JobStatus.FAILED) -> Job:
    return Job(id="j1", user_id="u1", kind=JobKind.INFERENCE, status=status, endpoint="default",
               spec=GenerateSpec(graph=GRAPH), attempts=1, max_attempts=3, queued_at=datetime(2026, 1, 1, tzinfo=UTC),
               error=error)


def test_ancestors_are_the_transitive_inputs_in_node_order():
    assert ancestors(GRAPH, "10") == ["3", "4", "5", "6", "8"]
    assert ancestors(GRAPH, "3") == ["4", "5", "6"]
    assert ancestors(GRAPH, "4") == [] and ancestors(GRAPH, None) == [] and ancestors(GRAPH, "99") == []


def test_node_error_splits_the_exception_type_from_the_message():
    data = error_data(_job({"code": "node_error", "node_id": "3",
                            "message": "RuntimeError: mat1 and mat2 shapes cannot be multiplied\n(1x8 and 16x8)"}),
                      prompt_id="p1")
    assert data == {"prompt_id": "p1", "node_id": "3", "node_type": "KSampler", "executed": ["4", "5", "6"],
                    "exception_message": "mat1 and mat2 shapes cannot be multiplied\n(1x8 and 16x8)",
                    "exception_type": "RuntimeError", "traceback": [],
                    "current_inputs": {"seed": [5], "steps": [2]}, "current_outputs": ["4", "5", "6"]}


def test_failure_without_a_node_keeps_the_server_code_and_message():
    data = error_data(_job({"code": "lease_expired", "message": "Boom: the worker stopped answering"}),
                      prompt_id="p1")
    assert (data["node_id"], data["node_type"], data["executed"]) == (None, None, [])
    assert data["exception_type"] == "lease_expired" and data["exception_message"] == "Boom: the worker stopped answering"
    assert error_data(_job(None), prompt_id="p1")["exception_message"] == "the job failed"


def test_interrupted_names_the_running_node_and_what_ran_before_it():
    data = interrupted_data(_job(None, JobStatus.CANCELLED), prompt_id="p1", node_id="8")
    assert data == {"prompt_id": "p1", "node_id": "8", "node_type": "VAEDecode", "executed": ["3", "4", "5", "6"]}
    assert interrupted_data(_job(None, JobStatus.CANCELLED), prompt_id="p1", node_id=None)["node_type"] is None
