"""Per job, the worker says where each pinned model came from (engine memory, file cache, download) and what
fetching and loading it took; the completion message carries it."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from types import SimpleNamespace

from sdfleet.engine.model_cache import ModelCache
from sdfleet.jobs.records import ModelLoad, ModelSource
from sdfleet.jobs.wire import ClaimedJob, CompleteRequest, ModelLoadReport, ModelToFetch
from sdfleet.worker.model_cache import ModelFileCache
from sdfleet.worker.model_loads import ModelLoadTimer, model_key_sha256
from sdfleet.worker.runner import WorkerLoop, WorkerOptions

DATA = os.urandom(50_000)
SHA = hashlib.sha256(DATA).hexdigest()
LORA = os.urandom(1_000)
LORA_SHA = hashlib.sha256(LORA).hexdigest()


class Ticks:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timer_classifies_memory_disk_and_download_and_adds_fetch_and_load_seconds():
    ticks = Ticks()
    timer = ModelLoadTimer(in_memory=["a" * 64, "c" * 64], clock=ticks)
    for sha, on_disk, seconds in (("a" * 64, True, 0.001), ("b" * 64, True, 0.002), ("c" * 64, False, 3.0),
                                  ("d" * 64, False, 4.0)):
        with timer.fetching(sha, on_disk=on_disk):
            ticks.now += seconds
    # the engine loaded b (from disk), c (held before the job, evicted, loaded again: the file was downloaded)
    # and d; an embedding key carries its name after the sha256
    loads = {load.sha256[0]: load for load in timer.loads(
        {f"checkpoint:{'b' * 64}": 1.5, f"vae:{'c' * 64}": 0.5, f"embedding:{'d' * 64}:token": 0.25})}
    assert loads["a"].source is ModelSource.MEMORY and abs(loads["a"].seconds - 0.001) < 1e-9
    assert loads["b"].source is ModelSource.DISK and abs(loads["b"].seconds - 1.502) < 1e-9
    assert loads["c"].source is ModelSource.DOWNLOAD and abs(loads["c"].seconds - 3.5) < 1e-9
    assert loads["d"].source is ModelSource.DOWNLOAD and abs(loads["d"].seconds - 4.25) < 1e-9
    assert model_key_sha256(f"embedding:{'d' * 64}:token") == "d" * 64


def test_engine_cache_counts_load_time_per_key_until_taken():
    cache = ModelCache(budget_bytes=10)
    cache.get_or_load("checkpoint:x", lambda: object(), size=lambda _v: 1)
    cache.get_or_load("checkpoint:x", lambda: object(), size=lambda _v: 1)  # a hit: no time counted
    cache.record_load("lora:y", 0.5)
    taken = cache.take_load_seconds()
    assert set(taken) == {"checkpoint:x", "lora:y"} and taken["lora:y"] == 0.5 and taken["checkpoint:x"] >= 0
    assert cache.take_load_seconds() == {}


class FakeEngine:
    """Loads every pinned checkpoint through a real ModelCache; its models hold one byte each."""

    def __init__(self, log: list | None = None) -> None:
        self.models = ModelCache(budget_bytes=1 << 20)
        self.log = log if log is not None else []

    def run(self, graph, *, files, **_kwargs):
        self.log.append(("run",))
        for name in files.model_names("checkpoints"):
            file = files.model_path("checkpoints", name)
            self.models.get_or_load(f"checkpoint:{file.sha256}", lambda: object(), size=lambda _v: 1)
        self.models.unpin_all()
        return SimpleNamespace(images=[], executed=[], cached=[])


class RecordingClient:
    """Serves the model files and records each completion's message as the server would read it."""

    def __init__(self) -> None:
        self.downloads: list[str] = []
        self.completed: list[CompleteRequest] = []
        self.log: list[tuple] = []  #: downloads and `loading_model` heartbeats, in order

    def stream_model(self, sha256: str, *, offset: int = 0):
        self.downloads.append(sha256)
        self.log.append(("download", sha256))
        yield {SHA: DATA, LORA_SHA: LORA}[sha256][offset:]

    def heartbeat(self, job, *, loading_model=None, **_kwargs) -> bool:
        if loading_model is not None:
            self.log.append(("loading_model", job.id, loading_model))
        return False

    def complete(self, job, *, outputs, info, model_loads: list[ModelLoad] | None = None) -> None:
        body = CompleteRequest(fencing_token=job.fencing_token, outputs=outputs, info=info,
                               model_loads=[ModelLoadReport.of(m) for m in model_loads or []])
        self.completed.append(CompleteRequest.model_validate(body.model_dump(mode="json")))


def _job(n: int) -> ClaimedJob:
    models = [ModelToFetch(folder="checkpoints", name="demo.safetensors", sha256=SHA, size=len(DATA), url=""),
              ModelToFetch(folder="loras", name="demo-lora.safetensors", sha256=LORA_SHA, size=len(LORA), url="")]
    return ClaimedJob(id=f"j{n}", fencing_token=1, lease_expires_at=datetime(2026, 1, 1, tzinfo=UTC),
                      lease_seconds=30.0, models=models, inputs=[], graph={})


def test_completion_carries_each_models_source_download_then_memory_then_disk(tmp_path):
    client, engine = RecordingClient(), FakeEngine()
    loop = WorkerLoop(client=client, cache=ModelFileCache(tmp_path / "cache"), options=WorkerOptions(),
                      engine=engine)
    loop.run_job(_job(1))  # nothing anywhere: both files downloaded, the checkpoint loaded
    loop.run_job(_job(2))  # the checkpoint in the engine, the LoRA file on disk (this engine never loads LoRAs)
    engine.models.remove(engine.models.keys())
    loop.run_job(_job(3))  # the engine forgot the checkpoint: loaded again from the file cache
    assert client.downloads == [SHA, LORA_SHA]
    sources = [{m.sha256: m.source for m in c.model_loads} for c in client.completed]
    assert sources == [{SHA: "download", LORA_SHA: "download"}, {SHA: "memory", LORA_SHA: "disk"},
                       {SHA: "disk", LORA_SHA: "disk"}]
    assert all(m.seconds >= 0 for c in client.completed for m in c.model_loads)


def test_an_older_workers_completion_without_model_loads_is_still_valid():
    body = CompleteRequest.model_validate({"fencing_token": 3, "outputs": [], "info": {"seconds": 1.0}})
    assert body.model_loads is None


def test_the_loading_model_phase_is_sent_before_the_load_only_when_the_engine_lacks_the_model(tmp_path):
    client = RecordingClient()
    engine = FakeEngine(log=client.log)
    loop = WorkerLoop(client=client, cache=ModelFileCache(tmp_path / "cache"), options=WorkerOptions(),
                      engine=engine)
    loop.run_job(_job(1))  # cold: the phase (naming the checkpoint) reaches the server before the download
    assert client.log == [("loading_model", "j1", "demo.safetensors"), ("download", SHA), ("download", LORA_SHA),
                          ("run",)]
    client.log.clear()
    loop.run_job(_job(2))  # the checkpoint is in the engine (a LoRA is applied per job: it does not count)
    assert client.log == [("run",)]
    engine.models.remove(engine.models.keys())
    client.log.clear()
    loop.run_job(_job(3))  # evicted: loaded again from the file cache, the phase shows again
    assert client.log == [("loading_model", "j3", "demo.safetensors"), ("run",)]
