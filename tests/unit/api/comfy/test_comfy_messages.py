"""ComfyUI's WebSocket messages shaped from the prompt feed's records (a scripted feed: no queue, no worker)."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from datetime import UTC, datetime

from sdfleet.api.comfy.messages import ComfyEventSession, preview_frame
from sdfleet.jobs.records import EventType, Job, JobEvent, JobKind, JobOutput, JobStatus
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.services.comfy_events import PromptEvent, PromptPreview, QueueChanged

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)
GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "model": ["4", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "t"}},
}
JOB = Job(id="j1", user_id="u1", kind=JobKind.INFERENCE, status=JobStatus.RUNNING, endpoint="default",
          spec=GenerateSpec(graph=GRAPH, source="comfy"), attempts=1, max_attempts=1, queued_at=T0)


class Feed:
    """The feed as the session uses it: each poll hands out the next scripted batch of records."""

    client_id = "c1"

    def __init__(self, *batches: list) -> None:
        self.batches = list(batches)
        self.previews_asked: list[bool] = []
        self.followed: set[str] = {"j1"}

    def topics(self) -> list[str]:
        return ["user:u1"]

    def following(self) -> set[str]:
        return self.followed

    def queue_remaining(self) -> int:
        return 3

    def poll(self, *, previews: bool = False) -> list:
        self.previews_asked.append(previews)
        return self.batches.pop(0)


def event(kind: EventType, seq: int, job: Job = JOB, **data) -> PromptEvent:
    return PromptEvent(prompt_id="p1", job=job, event=JobEvent(job_id=job.id, seq=seq, type=kind, data=data,
                                                               created_at=T0))


def session(*batches: list) -> ComfyEventSession:
    return ComfyEventSession(Feed(*batches), clock=lambda: T0)


def executing(node: str | None) -> dict:
    return {"type": "executing", "data": {"node": node, "display_node": node, "prompt_id": "p1"}}


def node_state(node: str, value: int, maximum: int, state: str) -> dict:
    return {"value": value, "max": maximum, "state": state, "node_id": node, "prompt_id": "p1",
            "display_node_id": node, "parent_node_id": None, "real_node_id": node}


def test_status_names_the_queue_size_and_the_client():
    s = session([QueueChanged(1)])
    assert s.status() == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 3}}, "sid": "c1"}}
    assert s.poll() == [{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}, "sid": "c1"}}]


def test_a_run_from_start_to_success():
    done = replace(JOB, status=JobStatus.SUCCEEDED, summary=JobSummary(source="comfy", info={"cached": ["4"]}),
                   outputs=(JobOutput(index=0, key="k", node_id="9", width=8, height=8, size=1),))
    s = session([event(EventType.STARTED, 1)],
                [event(EventType.PROGRESS, 2, node_id="3", value=1, max=2)],
                [event(EventType.PROGRESS, 3, node_id="3", value=2, max=2)],
                [event(EventType.SUCCEEDED, 4, job=done)])
    assert s.poll() == [{"type": "execution_start", "data": {"prompt_id": "p1", "timestamp": MS}},
                        {"type": "execution_cached", "data": {"nodes": [], "prompt_id": "p1", "timestamp": MS}}]
    assert s.poll() == [executing("3"),
                        {"type": "progress", "data": {"value": 1, "max": 2, "prompt_id": "p1", "node": "3"}},
                        {"type": "progress_state", "data": {"prompt_id": "p1",
                                                           "nodes": {"3": node_state("3", 1, 2, "running")}}}]
    assert [m["type"] for m in s.poll()] == ["progress", "progress_state"]  # the same node: no `executing`
    assert s.poll() == [
        {"type": "execution_cached", "data": {"nodes": ["4"], "prompt_id": "p1", "timestamp": MS}},
        executing("9"),
        {"type": "executed", "data": {"node": "9", "display_node": "9", "prompt_id": "p1", "output": {
            "images": [{"filename": "j1_00000_.png", "subfolder": "", "type": "output"}]}}},
        {"type": "execution_success", "data": {"prompt_id": "p1", "timestamp": MS}},
        executing(None)]


def test_a_failure_before_start_still_starts_then_errors():
    failed = replace(JOB, status=JobStatus.FAILED,
                     error={"code": "node_error", "node_id": "3", "message": "RuntimeError: boom"})
    s = session([event(EventType.FAILED, 1, job=failed)])
    messages = s.poll()
    assert [m["type"] for m in messages] == ["execution_start", "execution_cached", "execution_error", "executing"]
    assert messages[2]["data"] == {
        "prompt_id": "p1", "node_id": "3", "node_type": "KSampler", "executed": ["4"], "exception_message": "boom",
        "exception_type": "RuntimeError", "traceback": [], "current_inputs": {"seed": [5], "steps": [2]},
        "current_outputs": ["4"], "timestamp": MS}
    assert messages[3] == executing(None)


def test_an_interrupt_names_the_running_node_and_a_queued_cancel_says_nothing():
    cancelled = replace(JOB, status=JobStatus.CANCELLED)
    s = session([event(EventType.STARTED, 1), event(EventType.PROGRESS, 2, node_id="3", value=1, max=2)],
                [event(EventType.CANCELLED, 3, job=cancelled)])
    s.poll()
    assert s.poll() == [{"type": "execution_interrupted", "data": {
        "prompt_id": "p1", "node_id": "3", "node_type": "KSampler", "executed": ["4"], "timestamp": MS}},
        executing(None)]
    assert session([event(EventType.CANCELLED, 1, job=cancelled)]).poll() == []


def test_previews_are_asked_for_once_the_client_wants_them_and_name_the_running_node():
    s = session([event(EventType.STARTED, 1), event(EventType.PROGRESS, 2, node_id="3", value=1, max=2)],
                [PromptPreview(prompt_id="p1", job_id="j1", png=b"\x89PNG")])
    s.poll()
    s.supports_preview_metadata = True
    [frame] = s.poll()
    assert s._feed.previews_asked == [False, True]
    assert frame == preview_frame(b"\x89PNG", node_id="3", prompt_id="p1")
    kind, size = struct.unpack(">II", frame[:8])
    meta = json.loads(frame[8:8 + size])
    assert kind == 4 and frame[8 + size:] == b"\x89PNG"
    assert meta == {"node_id": "3", "display_node_id": "3", "parent_node_id": None, "real_node_id": "3",
                    "prompt_id": "p1", "image_type": "image/png"}


def test_what_was_told_is_forgotten_with_the_prompt():
    s = session([event(EventType.STARTED, 1)], [])
    s.poll()
    s._feed.followed = set()
    s.poll()
    assert s._told == {}
