"""Inference, worker, A1111 and ComfyUI services on the in-memory job queue and object store: no server, no
database, no worker process — the services' own rules, one submission to completion."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from sdfleet.api.comfy import wire
from sdfleet.domain.accounts import CredentialKind, Principal, User
from sdfleet.domain.checkpoints import Checkpoint, CheckpointStatus, ModelType
from sdfleet.domain.errors import Conflict, Gone, InvalidInput, NotFound, QuotaExceeded
from sdfleet.domain.ids import new_id
from sdfleet.domain.permissions import Permission
from sdfleet.domain.workers import WorkerRecord
from sdfleet.jobs.memory import MemoryJobQueue
from sdfleet.jobs.records import EventType, JobKind, JobProgress, JobStatus, NewJob
from sdfleet.jobs.spec import GenerateSpec, JobSummary, ModelPin
from sdfleet.modelfiles.types import ENGINE_FOLDERS
from sdfleet.objects.memory import MemoryObjectStore
from sdfleet.services.a1111 import A1111Service, WaitPolicy
from sdfleet.services.comfy import (
    ComfyService,
    InputProblem,
    PromptQueue,
    PromptRejected,
    RejectedNode,
    output_filename,
)
from sdfleet.services.comfy_events import ComfyPromptFeed, PromptEvent, PromptPreview, QueueChanged
from sdfleet.services.graphs import GraphTools
from sdfleet.services.inference import InferenceLimits, InferenceService, StaticRouter, Submission
from sdfleet.services.notifier import Notifier, PreviewStore
from sdfleet.services.workers import OutputReport, StaleLeaseError, WorkerService
from tests.fixtures.images import png_bomb

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CKPT = "demo-sd15.safetensors"
GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}},
}


def checkpoint(name: str, sha: str, model_type: ModelType = ModelType.CHECKPOINT) -> Checkpoint:
    return Checkpoint(id=name, name=name, model_type=model_type, sha256=sha * 64, short_hash=(sha * 64)[:10],
                      architecture="sd15", layout="ldm", precision="fp16", size=1234, format="safetensors",
                      tensor_count=1, status=CheckpointStatus.ACTIVE, allowed_roles=(), created_by=None,
                      created_at=T0, updated_at=T0)


class Catalog:
    """The model registry and the user options as the services ask them (every model visible to everyone)."""

    def __init__(self) -> None:
        self.models = [checkpoint(CKPT, "a"), checkpoint("other.safetensors", "b")]
        self.resolved = 0

    def visible_pins(self, principal) -> list[ModelPin]:
        self.resolved += 1
        return sorted((ModelPin(folder=ENGINE_FOLDERS[m.model_type], name=m.name, sha256=m.sha256, size=m.size)
                       for m in self.models), key=lambda p: p.name.lower())

    def resolve(self, principal, *, model_type: str, name: str):
        found = next((m for m in self.models if m.model_type.value == model_type and m.name == name), None)
        if found is None:
            raise NotFound(f"no model {name!r}")
        return found

    def visible_names(self, principal, model_type: str) -> list[str]:
        return [m.name for m in self.models if m.model_type.value == model_type]

    def visible_names_by_type(self, principal) -> dict[str, list[str]]:
        return {t.value: self.visible_names(principal, t.value) for t in ModelType}

    def visible_models(self, principal, model_type: ModelType) -> list[Checkpoint]:
        return [m for m in self.models if m.model_type is model_type]

    def overrides(self, principal) -> dict:
        return {}


class Registry:
    """The worker registry: one worker, whatever token."""

    def __init__(self) -> None:
        self.worker = WorkerRecord(id="w1", name="w1", endpoint="default", status="idle", device=None, info={},
                                   loaded_models=[], created_at=T0, last_seen_at=None, revoked_at=None)
        self.reports: list[dict] = []

    def report(self, worker_id: str, **fields) -> None:
        self.reports.append(fields)

    def preloaded(self, endpoint: str) -> list:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def principal(user_id: str = "ann") -> Principal:
    return Principal(user=User(id=user_id, username=user_id, roles=("artist",)),
                     permissions=frozenset({Permission.INFERENCE_ALL}), credential=CredentialKind.API_KEY,
                     credential_id="k")


def png(width: int = 8, height: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def world():
    class World:
        clock = Clock()
        queue = MemoryJobQueue()
        objects = MemoryObjectStore()
        catalog = Catalog()
        notifier, previews, graphs = Notifier(), PreviewStore(), GraphTools()
        registry = Registry()

    w = World()
    w.inference = InferenceService(queue=w.queue, objects=w.objects, catalog=w.catalog, graphs=w.graphs,
                                   router=StaticRouter(["default"]), notifier=w.notifier, previews=w.previews,
                                   limits=InferenceLimits(max_queued_per_user=6), clock=w.clock,
                                   default_checkpoint_for=lambda p: None)
    w.workers = WorkerService(queue=w.queue, registry=w.registry, objects=w.objects, blob_key=lambda s: f"models/{s}",
                              notifier=w.notifier, previews=w.previews, lease_seconds=30, clock=w.clock)
    w.a1111 = A1111Service(inference=w.inference, options=w.catalog, notifier=w.notifier, workers=lambda: [],
                           clock=w.clock, wait=WaitPolicy(timeout_seconds=30, recheck_seconds=0.05))
    w.comfy = ComfyService(inference=w.inference, catalog=w.catalog, graphs=w.graphs, notifier=w.notifier,
                           objects=w.objects, devices=lambda: [], clock=w.clock)
    return w


def run_to_completion(w, *, images: int = 1) -> str:
    """What a worker does: claim, upload the outputs, complete."""
    lease = w.workers.claim(w.registry.worker)
    assert lease is not None, "a job was queued"
    for index in range(images):
        w.workers.store_output(w.registry.worker, lease.job.id, token=lease.fencing_token, index=index,
                               stream=io.BytesIO(png()))
    w.workers.complete(w.registry.worker, lease.job.id, token=lease.fencing_token,
                       outputs=[OutputReport(index=i, node_id="9") for i in range(images)], info={"seconds": 0.5})
    return lease.job.id


# Inference
def test_submit_pins_each_model_once_and_keeps_the_graph(world):
    job = world.inference.submit(principal(), Submission(graph=GRAPH, source="comfy"))
    assert job.kind is JobKind.GENERATE and job.status is JobStatus.QUEUED
    assert isinstance(job.spec, GenerateSpec) and dict(job.spec.graph) == GRAPH
    assert [(m.folder, m.name, m.sha256) for m in job.spec.models] == [("checkpoints", CKPT, "a" * 64)]
    assert job.spec.models[0].type is ModelType.CHECKPOINT and job.spec.models[0].short_hash == "a" * 10
    assert job.summary.model == CKPT and job.summary.source == "comfy"
    assert world.catalog.resolved == 1, "the registry is asked once per submission"


def test_a1111_titles_resolve_with_their_hash_checked(world):
    def submit(title):
        return world.inference.submit(principal(), Submission(task="txt2img", source="a1111", params={
            "prompt": "a cat", "steps": 2, "width": 64, "height": 64,
            "override_settings": {"sd_model_checkpoint": title}}))

    for title in (f"other.safetensors [{'b' * 10}]", "other", "other.safetensors", "b" * 10):
        job = submit(title)
        assert job.summary.model == "other.safetensors", title
        assert [m.sha256 for m in job.spec.models] == ["b" * 64]
    with pytest.raises(InvalidInput) as wrong:
        submit(f"other.safetensors [{'a' * 10}]")
    assert wrong.value.field == "params.override_settings.sd_model_checkpoint" and "b" * 10 in wrong.value.message
    with pytest.raises(InvalidInput) as unknown:
        submit("missing.safetensors")
    assert unknown.value.field == "graph"


def test_a_task_is_compiled_with_its_seeds_in_the_summary(world):
    job = world.inference.submit(principal(), Submission(task="txt2img", source="a1111", params={
        "prompt": "a cat", "seed": 100, "batch_size": 2, "n_iter": 2, "steps": 2, "width": 64, "height": 64,
        "override_settings": {"sd_model_checkpoint": CKPT}}))
    assert job.summary.seed == 100 and job.summary.all_seeds == (100, 101, 102, 103)
    assert job.summary.task == "txt2img" and job.summary.prompt == "a cat" and job.summary.model == CKPT
    assert (job.summary.width, job.summary.height) == (64, 64)


def test_unknown_models_and_bad_shapes_are_refused_by_field(world):
    with pytest.raises(InvalidInput) as bad:
        world.inference.submit(principal(), Submission(graph={**GRAPH, "4": {
            "class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}}}))
    assert bad.value.field == "graph"
    with pytest.raises(InvalidInput) as both:
        world.inference.submit(principal(), Submission(task="txt2img", graph=GRAPH))
    assert both.value.field == "task"
    assert world.queue.count(statuses=(JobStatus.QUEUED,)) == 0


def test_quota_idempotency_and_owner_only(world):
    first = world.inference.submit(principal(), Submission(graph=GRAPH, idempotency_key="k"), body_hash="h1")
    assert world.inference.submit(principal(), Submission(graph=GRAPH, idempotency_key="k"), body_hash="h1").id == \
        first.id
    with pytest.raises(Conflict):
        world.inference.submit(principal(), Submission(graph=GRAPH, idempotency_key="k"), body_hash="h2")
    for _ in range(5):
        world.inference.submit(principal(), Submission(graph=GRAPH))
    with pytest.raises(QuotaExceeded):
        world.inference.submit(principal(), Submission(graph=GRAPH))
    with pytest.raises(NotFound):
        world.inference.get(principal("bob"), first.id)
    with pytest.raises(NotFound):
        world.inference.cancel(principal("bob"), first.id)
    assert world.inference.cancel(principal(), first.id).status is JobStatus.CANCELLED


# Worker
def test_worker_fencing_outputs_and_files(world):
    job = world.inference.submit(principal(), Submission(graph=GRAPH))
    lease = world.workers.claim(world.registry.worker)
    assert lease.job.id == job.id
    world.objects.put(f"models/{'a' * 64}", b"weights", content_type="application/octet-stream")
    assert world.workers.model_size(world.registry.worker, "a" * 64) == 7  # the worker reaches its job's model …
    with pytest.raises(NotFound):  # … and no other
        world.workers.model_size(world.registry.worker, "b" * 64)
    world.objects.delete(f"models/{'a' * 64}")
    with pytest.raises(Gone):  # deleted since the job pinned it: the worker fails the job, not its lease
        world.workers.model_size(world.registry.worker, "a" * 64)
    with pytest.raises(StaleLeaseError):
        world.workers.heartbeat(world.registry.worker, job.id, token=lease.fencing_token + 1, progress=None,
                                preview_png=None)
    with pytest.raises(InvalidInput):
        world.workers.store_output(world.registry.worker, job.id, token=lease.fencing_token, index=0,
                                   stream=io.BytesIO(b"not a png"))
    with pytest.raises(InvalidInput) as bomb:  # a header declaring 12000x12000: refused before any decoding
        world.workers.store_output(world.registry.worker, job.id, token=lease.fencing_token, index=0,
                                   stream=io.BytesIO(png_bomb()))
    assert "SDFLEET_MAX_OUTPUT_PIXELS" in str(bomb.value) and bomb.value.details["max_pixels"] == 8192 * 8192
    assert not world.objects.exists(f"outputs/{job.id}/t{lease.fencing_token}/0.png")
    with pytest.raises(InvalidInput):  # completing with an output never uploaded
        world.workers.complete(world.registry.worker, job.id, token=lease.fencing_token,
                               outputs=[OutputReport(index=0, node_id="9")], info=None)
    world.workers.store_output(world.registry.worker, job.id, token=lease.fencing_token, index=0,
                               stream=io.BytesIO(png(16, 8)))
    done = world.workers.complete(world.registry.worker, job.id, token=lease.fencing_token,
                                  outputs=[OutputReport(index=0, node_id="9")], info={"seconds": 1})
    assert done.status is JobStatus.SUCCEEDED and (done.outputs[0].width, done.outputs[0].height) == (16, 8)
    assert done.summary.info == {"seconds": 1}
    with pytest.raises(StaleLeaseError):
        world.workers.complete(world.registry.worker, job.id, token=lease.fencing_token, outputs=[], info=None)


def test_reaper_requeues_and_cancels(world):
    asked = world.inference.submit(principal(), Submission(graph=GRAPH))
    world.workers.claim(world.registry.worker)
    world.inference.cancel(principal(), asked.id)  # running: flagged
    assert world.inference.get(principal(), asked.id).cancel_requested
    world.clock.now = T0 + timedelta(seconds=60)
    world.workers.reap()
    assert world.inference.get(principal(), asked.id).status is JobStatus.CANCELLED


# A1111
def test_a1111_generation_reads_seeds_and_hash_from_the_job(world):
    async def scenario():
        task = asyncio.create_task(world.a1111.generate(principal(), task="txt2img", params={
            "prompt": "a cat", "seed": 7, "batch_size": 2, "steps": 2, "width": 64, "height": 64}))
        while world.queue.count(statuses=(JobStatus.QUEUED,)) == 0:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(run_to_completion, world, images=2)
        return await task

    # In its own thread: the browser tests' sync Playwright keeps an event loop running on the main thread.
    with ThreadPoolExecutor(1) as pool:
        generation = pool.submit(asyncio.run, scenario()).result(timeout=300)
    info = generation.info
    assert info["seed"] == 7 and info["all_seeds"] == [7, 8]
    assert info["sd_model_name"] == "demo-sd15" and info["sd_model_hash"] == "a" * 10
    assert len(generation.images) == 2 and not generation.interrupted


# ComfyUI
def test_comfy_prompt_queue_and_history(world):
    queued = world.comfy.submit_prompt(principal(), {"prompt": GRAPH, "client_id": "c1", "prompt_id": "p-1"})
    assert queued.prompt_id == "p-1"
    pending = world.comfy.queue(principal()).pending
    assert [p.prompt_id for p in pending] == ["p-1"] and pending[0].extra_data == {"client_id": "c1"}
    assert pending[0].outputs_to_execute == ["9"]
    assert world.comfy.queue(principal("bob")) == PromptQueue(running=[], pending=[])
    assert world.comfy.history(principal()) == []
    job_id = run_to_completion(world)
    [finished] = world.comfy.history(principal())
    assert finished.prompt_id == "p-1" and finished.job.id == job_id
    assert finished.job.status is JobStatus.SUCCEEDED and [o.node_id for o in finished.job.outputs] == ["9"]
    assert world.comfy.history(principal("bob")) == []
    # ComfyUI's JSON is shaped in the API layer from these records
    entry = wire.history([finished])["p-1"]
    assert entry["status"]["completed"] and entry["prompt"][1] == "p-1" and entry["prompt"][4] == ["9"]
    assert entry["outputs"]["9"]["images"][0]["filename"] == output_filename(job_id, 0)
    assert wire.queue(world.comfy.queue(principal("bob"))) == {"queue_running": [], "queue_pending": []}


def test_comfy_rejects_a_graph_naming_an_unknown_model(world):
    graph = {**GRAPH, "4": replace_inputs(GRAPH["4"], ckpt_name="nope.safetensors")}
    with pytest.raises(InvalidInput):
        world.comfy.submit_prompt(principal(), {"prompt": graph})
    assert world.queue.count(statuses=(JobStatus.QUEUED,)) == 0


def test_comfy_rejected_prompt_carries_typed_node_problems(world):
    graph = {**GRAPH, "4": replace_inputs(GRAPH["4"], ckpt_name="nope.safetensors")}
    with pytest.raises(PromptRejected) as info:
        world.comfy.submit_prompt(principal(), {"prompt": graph})
    [problem] = info.value.nodes["4"].problems
    assert info.value.nodes == {"4": RejectedNode(class_type="CheckpointLoaderSimple", problems=[problem],
                                                  dependent_outputs=["9"])}
    assert (problem.type, problem.input_name) == ("value_not_in_list", "ckpt_name")
    with pytest.raises(PromptRejected) as info:
        world.comfy.submit_prompt(principal(), {"prompt": GRAPH, "client_id": 5})
    assert info.value.nodes == {} and info.value.message == "client_id must be a string of 1-128 characters"
    assert InputProblem("t", "m").input_name is None


def test_comfy_feed_follows_one_clients_prompts_as_records(world):
    feed = ComfyPromptFeed(comfy=world.comfy, inference=world.inference, principal=principal(), client_id="c1",
                           connected_at=world.clock())
    assert feed.queue_remaining() == 0 and feed.poll() == []
    world.comfy.submit_prompt(principal(), {"prompt": GRAPH, "client_id": "other"})
    world.comfy.submit_prompt(principal(), {"prompt": GRAPH, "client_id": "c1", "prompt_id": "p-1"})
    first = feed.poll()
    assert first[0] == QueueChanged(2) and [(i.prompt_id, i.event.type) for i in first[1:]] == [
        ("p-1", EventType.QUEUED)]
    [mine] = [j for j in world.comfy.recent(principal()) if j.spec.extra.get("client_id") == "c1"]
    assert feed.following() == {mine.id} and f"job:{mine.id}" in feed.topics()
    lease = world.workers.claim(world.registry.worker)
    while lease.job.id != mine.id:  # the other client's prompt first: the feed says nothing of it
        world.workers.complete(world.registry.worker, lease.job.id, token=lease.fencing_token, outputs=[],
                               info=None)
        lease = world.workers.claim(world.registry.worker)
    world.workers.heartbeat(world.registry.worker, mine.id, token=lease.fencing_token,
                            progress=JobProgress(value=1, max=2, node_id="3"), preview_png=png())
    items = feed.poll(previews=True)
    assert items[0] == QueueChanged(1)
    assert [(i.prompt_id, i.event.type) for i in items[1:-1]] == [("p-1", EventType.STARTED),
                                                                  ("p-1", EventType.PROGRESS)]
    assert items[-1] == PromptPreview(prompt_id="p-1", job_id=mine.id, png=png())
    assert feed.poll(previews=True) == []  # the same preview is not sent twice
    world.workers.complete(world.registry.worker, mine.id, token=lease.fencing_token, outputs=[], info=None)
    [done, *_] = [i for i in feed.poll() if isinstance(i, PromptEvent)]
    assert done.event.type is EventType.SUCCEEDED and done.last and done.job.status is JobStatus.SUCCEEDED
    assert feed.following() == set() and feed.poll() == []


def replace_inputs(node: dict, **inputs) -> dict:
    return {**node, "inputs": {**node["inputs"], **inputs}}



def test_comfy_history_queue_and_jobs_page_through_250_prompts(world):
    ids = sorted(new_id() for _ in range(250))  # ids sort in submission order (to the millisecond)
    for i, job_id in enumerate(ids):
        world.queue.submit(NewJob(id=job_id, user_id="ann", endpoint="default",
                                  spec=GenerateSpec(graph=GRAPH, source="comfy", extra={"prompt_id": f"p{i:03d}"}),
                                  summary=JobSummary(source="comfy"), max_attempts=1, idempotency_key=None,
                                  request_hash=None), now=T0 + timedelta(seconds=i))
    assert world.comfy.queue_remaining(principal()) == 250
    assert len(world.comfy.queue(principal()).pending) == 250
    for _ in range(250):
        lease = world.queue.claim(worker_id="w", endpoints=["default"], now=T0, lease_seconds=30)
        world.queue.complete(lease.job.id, token=lease.fencing_token, outputs=[], now=T0)
    history = [p.prompt_id for p in world.comfy.history(principal())]
    assert len(history) == 250 and history[0] == "p000" and history[-1] == "p249"  # oldest first
    assert [p.prompt_id for p in world.comfy.history(principal(), max_items=3)] == ["p247", "p248", "p249"]
    assert world.comfy.history_of(principal(), "p000").job.status is JobStatus.SUCCEEDED  # beyond the newest 200
    pages = [world.comfy.jobs(principal(), statuses=(JobStatus.SUCCEEDED,), offset=o, limit=100, ascending=True)
             for o in (0, 100, 200)]
    assert [p.total for p in pages] == [250] * 3
    assert [p.prompt_id for page in pages for p in page.prompts] == [f"p{i:03d}" for i in range(250)]
    assert world.comfy.jobs(principal(), statuses=(JobStatus.QUEUED,), offset=0, limit=10,
                            ascending=False).prompts == []
    shaped = [wire.jobs(p) for p in pages]
    assert [s["pagination"]["has_more"] for s in shaped] == [True, True, False]
    assert shaped[0]["jobs"][0]["id"] == "p000" and shaped[0]["jobs"][0]["status"] == "completed"
    assert wire.job_statuses(["completed", "pending"]) == (JobStatus.QUEUED, JobStatus.SUCCEEDED)
    assert wire.job_statuses([]) == tuple(JobStatus)
    with pytest.raises(InvalidInput, match="status must be among"):
        wire.job_statuses(["done"])
