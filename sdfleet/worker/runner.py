"""The worker loop: claim → fetch files → run the engine → upload outputs → complete.

Heartbeats run on their own thread so the lease stays alive during long steps; a progress event
triggers an early heartbeat (throttled). SIGTERM: finish the current job (or hand it back after
`drain_seconds`), then exit."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sdfleet.jobs.wire import ClaimedJob, OutputDescription
from sdfleet.worker.client import InputMissing, LeaseLost, ModelMissing, ServerError, TokenRefused, WorkerClient
from sdfleet.worker.memory import memory_report
from sdfleet.worker.model_cache import HashMismatch, ModelFileCache
from sdfleet.worker.model_fetch import fetch_model
from sdfleet.worker.model_loads import ModelLoadTimer, file_cached, model_key_sha256

log = logging.getLogger("sdfleet.worker")
PROGRESS_INTERVAL = 0.2
LOADING_SENT_WAIT = 5.0  # seconds a job waits for its `loading_model` phase to be sent before loading anyway
PREVIEW_INTERVAL = 0.5  # at most two step previews a second: plenty for a progress view, cheap for the engine


@dataclass
class WorkerOptions:
    """How the worker runs."""

    device: str = "cpu"
    claim_wait_seconds: float = 20.0
    drain_seconds: float = 60.0
    preview: bool = True
    once: bool = False  # exit after one job (tests, benchmarks)
    max_image_pixels: int = 4096 * 4096  # LoadImage / LoadImageMask refuse larger input images


def resolve_device(device: str) -> str:
    """`auto` → the first CUDA device when there is one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


class JobFiles:
    """The engine's ModelFiles for one job: names → verified local files."""

    def __init__(self, models: dict[tuple[str, str], tuple[Path, str]], images: dict[str, Path]) -> None:
        self._models = models
        self._images = images

    def model_path(self, folder: str, name: str):
        from sdfleet.engine.files import ModelFile

        try:
            path, sha256 = self._models[(folder, name)]
        except KeyError:
            raise KeyError(f"no model {name!r} in folder {folder!r} for this job") from None
        return ModelFile(path=path, sha256=sha256)

    def input_image(self, name: str) -> Path:
        try:
            return self._images[name]
        except KeyError:
            raise KeyError(f"no input image {name!r} for this job") from None

    def model_names(self, folder: str) -> list[str]:
        """The job's pinned models in `folder`."""
        return sorted(name for f, name in self._models if f == folder)


class _Heartbeat(threading.Thread):
    """Keeps one job's lease alive and carries progress; notices cancel requests and lost leases.

    Progress contract (what SSE and ComfyUI clients can rely on): the first step and the last step of each
    sampler node always reach the server, in order and before the job completes; the steps in between are
    throttled to one heartbeat per PROGRESS_INTERVAL, latest value wins."""

    def __init__(self, client: WorkerClient, job: ClaimedJob) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job.id}")
        self.client, self.job = client, job
        self.interval = max(0.5, job.lease_seconds / 3)
        self.cancel_requested = False
        self.lease_lost = False
        self.token_refused = False
        self._lock = threading.Lock()
        self._progress: _Step | None = None  #: the latest step, sent when the throttle allows
        self._milestones: list[_Step] = []  #: first/last steps of sampler nodes, never dropped
        self._started_nodes: set[str | None] = set()
        self._preview: bytes | None = None
        self._loading_sent: threading.Event | None = None  #: set once the `loading_model` milestone was sent
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._last = 0.0

    def progress(self, value: int, maximum: int, node_id: str | None, preview: bytes | None,
                 metrics: dict[str, float] | None = None) -> None:
        step = (value, maximum, node_id, metrics, None)
        with self._lock:
            first = node_id not in self._started_nodes
            self._started_nodes.add(node_id)
            milestone = first or value >= maximum
            if milestone:
                self._milestones.append(step)
            self._progress = step
            if preview:
                self._preview = preview
        if milestone or time.monotonic() - self._last >= PROGRESS_INTERVAL:
            self._wake.set()

    def loading_model(self, name: str, *, wait: float = LOADING_SENT_WAIT) -> None:
        """Report the `loading_model` phase (naming the model) before the job's first step: never dropped. Waits
        until the heartbeat carrying it was sent (or failed; `wait` seconds at most), so that it shows before the
        load rather than after it."""
        sent = threading.Event()
        with self._lock:
            self._milestones.append((0, 0, None, None, name))
            self._loading_sent = sent
        self._wake.set()
        if self.is_alive():
            sent.wait(wait)

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()

    def finish(self) -> None:
        """Stop beating, then send the milestones still pending (the job is about to complete)."""
        self.stop()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=120)
        for attempt in range(3):  # a transient failure: try again, as `complete` would
            if self.lease_lost or not self._milestones:
                return
            if attempt:
                time.sleep(attempt)
            self.beat()

    def run(self) -> None:
        while not self._halt.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._halt.is_set():
                return
            self.beat()

    def beat(self) -> None:
        with self._lock:
            milestones, self._milestones = self._milestones, []
            latest, preview, self._preview = self._progress, self._preview, None
            loading_sent, self._loading_sent = self._loading_sent, None
        try:
            self._send(milestones, latest, preview)
        finally:
            if loading_sent is not None:  # sent, or failed (then the next beat sends it): the job goes on
                loading_sent.set()

    def _send(self, milestones: list[_Step], latest: _Step | None, preview: bytes | None) -> None:
        steps: list[_Step | None] = list(milestones)
        if latest is not None and (not steps or steps[-1] != latest):
            steps.append(latest)
        self._last = time.monotonic()
        for index, step in enumerate(steps or [None]):
            value, maximum, node_id, metrics, loading = step or (None, None, None, None, None)
            try:
                if self.client.heartbeat(self.job, value=value, maximum=maximum, node_id=node_id, metrics=metrics,
                                         preview_png=preview if index == len(steps) - 1 else None,
                                         loading_model=loading):
                    self.cancel_requested = True
            except LeaseLost:
                self.lease_lost = True
                self._halt.set()
                return
            except TokenRefused:
                # The job cannot be finished under a refused token; the worker loop exits at its next call.
                self.lease_lost = self.token_refused = True
                self._halt.set()
                return
            except (httpx.HTTPError, ServerError) as exc:
                log.warning("heartbeat for %s failed: %s", self.job.id, exc)
                with self._lock:  # the next beat sends the milestones not yet sent
                    self._milestones[:0] = milestones[index:]
                return


#: value, max, node, a training's metrics, the model being loaded (the `loading_model` phase: no step yet)
_Step = tuple[int, int, str | None, dict[str, float] | None, str | None]


def _cold_model(job: ClaimedJob, in_memory: list[str]) -> str | None:
    """The pinned model the `loading_model` phase names: one the engine does not hold (a checkpoint first), None
    when it holds them all. LoRAs do not count: the engine applies them per job and never holds them."""
    cold = [m for m in job.models if m.folder != "loras" and m.sha256 not in in_memory]
    cold.sort(key=lambda m: m.folder != "checkpoints")
    return cold[0].name if cold else None


class _StopWhileIdle(BaseException):
    """Raised by the signal handler to leave a long-poll claim at once."""


class WorkerLoop:
    """One worker process: one engine on one device, one job at a time."""

    def __init__(self, *, client: WorkerClient, cache: ModelFileCache, options: WorkerOptions, engine=None) -> None:
        self.client = client
        self.cache = cache
        self.options = options
        self._engine = engine
        self.stopping = threading.Event()
        self._drain_deadline: float | None = None
        self._waiting_for_claim = False
        self._inputs_dir = Path(tempfile.mkdtemp(prefix="sdfleet-inputs-"))

    @property
    def engine(self):
        if self._engine is None:
            from sdfleet.engine.executor import Engine

            self._engine = Engine(device=self.options.device, max_image_pixels=self.options.max_image_pixels)
        return self._engine

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: stop claiming, finish (or after drain_seconds hand back) the current job."""
        def handle(signum, _frame) -> None:
            if self.stopping.is_set():
                self._drain_deadline = time.monotonic()  # second signal: hand back now
            self.stopping.set()
            self._drain_deadline = self._drain_deadline or time.monotonic() + self.options.drain_seconds
            if self._waiting_for_claim:
                # Idle in a long poll: nothing is held, so leave now rather than after the poll ends
                # (a job claimed in that instant is not lost: its lease expires and it runs again).
                log.info("signal %s: idle, exiting", signum)
                raise _StopWhileIdle
            log.info("signal %s: finishing the current job, then exiting", signum)

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def loaded_models(self) -> list[str]:
        """The sha256s of the models the engine holds (its cache keys are `<kind>:<sha256>`)."""
        models = getattr(self._engine, "models", None) if self._engine is not None else None
        keys = [str(k) for k in models.keys()] if models is not None else []
        return list(dict.fromkeys(model_key_sha256(k) for k in keys))

    def _take_engine_load_seconds(self) -> dict[str, float]:
        """What the engine spent loading each cache key since the last call (nothing when no engine is up)."""
        models = getattr(self._engine, "models", None) if self._engine is not None else None
        take = getattr(models, "take_load_seconds", None)
        return take() if take is not None else {}

    def _report(self, status: str) -> None:
        try:
            info = {"pid": os.getpid(), **memory_report(self.options.device)}
            self.client.report(status=status, device=self.options.device, loaded_models=self.loaded_models(),
                               info=info)
        except (httpx.HTTPError, ServerError) as exc:
            # While stopping, the server may be gone already (it stops its replicas on shutdown).
            (log.info if self.stopping.is_set() else log.warning)("report failed: %s", exc)

    def preload(self) -> list[str]:
        """Download the models the worker's endpoint preloads and load its checkpoints into the engine.

        A model that fails to download or load is logged and skipped: jobs still run (and fetch it then)."""
        try:
            models = self.client.assignment().preload
        except (httpx.HTTPError, ServerError) as exc:
            log.warning("assignment failed: %s; starting without preloading", exc)
            return []
        done = []
        for m in models:
            if self.stopping.is_set():
                break
            started = time.perf_counter()
            try:
                path = self.cache.ensure(m.sha256, size=m.size,
                                         fetch=lambda offset, sha=m.sha256: self.client.stream_model(sha,
                                                                                                     offset=offset))
                if m.folder == "checkpoints":
                    from sdfleet.engine.files import ModelFile

                    self.engine.loader.checkpoint(ModelFile(path=path, sha256=m.sha256))
                    self.engine.models.unpin_all()  # loaded, but evictable when a job needs the room
            except (httpx.HTTPError, ServerError, LeaseLost, HashMismatch, OSError, ValueError, RuntimeError) as exc:
                log.warning("preload of %s (%s) failed: %s", m.name, m.sha256[:12], exc)
                continue
            done.append(m.sha256)
            log.info("preloaded %s (%s) in %.2f s", m.name, m.sha256[:12], time.perf_counter() - started)
        return done

    def run(self) -> None:
        """Preload the endpoint's models, then claim and run jobs until stopped.

        Raises TokenRefused when the server refuses the worker token (revoked): retrying cannot help, so the
        worker ends; a network error or a 5xx is retried with backoff instead."""
        self._report("starting")
        self.preload()
        self._report("idle")
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                self._waiting_for_claim = True
                try:
                    job = self.client.claim(wait_seconds=self.options.claim_wait_seconds)
                finally:
                    self._waiting_for_claim = False
                backoff = 1.0
            except _StopWhileIdle:
                break
            except (httpx.HTTPError, ServerError) as exc:
                log.warning("claim failed (%s); retrying in %.0f s", exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if job is None:
                continue
            self.run_job(job)
            if self.options.once:
                break
            self._report("idle")  # the models the job loaded (or evicted) and fresh memory figures
        self._report("draining")

    def run_job(self, job: ClaimedJob) -> None:
        """Run one claimed job to an end the server accepts."""
        log.info("job %s: claimed (token %d)", job.id, job.fencing_token)
        heartbeat = _Heartbeat(self.client, job)
        heartbeat.start()
        try:
            if job.kind == "train":
                self._run_training(job, heartbeat)
            else:
                self._run_job(job, heartbeat)
        except LeaseLost:
            if heartbeat.token_refused:
                raise TokenRefused(f"the server refused this worker's token during job {job.id}") from None
            log.warning("job %s: lease lost; dropping it", job.id)
        except (httpx.HTTPError, ServerError) as exc:
            log.error("job %s: server unreachable while finishing (%s); the lease will expire", job.id, exc)
        finally:
            heartbeat.stop()

    def _should_stop(self, heartbeat: _Heartbeat) -> bool:
        draining = self._drain_deadline is not None and time.monotonic() > self._drain_deadline
        return heartbeat.cancel_requested or heartbeat.lease_lost or draining

    def _run_training(self, job: ClaimedJob, heartbeat: _Heartbeat) -> None:
        from sdfleet.worker.training import TrainingRun

        TrainingRun(client=self.client, cache=self.cache, device=self.options.device, job=job, heartbeat=heartbeat,
                    should_stop=lambda: self._should_stop(heartbeat)).run()

    def _run_job(self, job: ClaimedJob, heartbeat: _Heartbeat) -> None:
        from sdfleet.engine.events import Cancelled, Progress
        from sdfleet.engine.graph import GraphValidationError

        in_memory = self.loaded_models()
        loads = ModelLoadTimer(in_memory=in_memory)
        self._take_engine_load_seconds()  # loads before this job (preload, an earlier job that failed) are not its
        cold = _cold_model(job, in_memory)
        if cold is not None:
            heartbeat.loading_model(cold)
        try:
            files = self._fetch_files(job, heartbeat, loads)
        except HashMismatch as exc:
            self.client.fail(job, code="model_hash_mismatch", message=str(exc))
            return
        except ModelMissing as exc:  # deleted since the job was queued (or the lease is gone: fail is then refused)
            self.client.fail(job, code="model_missing", message=str(exc))
            return
        except InputMissing as exc:
            node_id = next((nid for nid, node in job.graph.items()
                            if isinstance(node, dict) and (node.get("inputs") or {}).get("image") == exc.name), None)
            self.client.fail(job, code="input_missing", message=str(exc), node_id=node_id)
            return

        def on_event(event: Any) -> None:
            if isinstance(event, Progress):
                heartbeat.progress(event.value, event.max, event.node_id, event.preview_png)

        def should_cancel() -> bool:
            return self._should_stop(heartbeat)

        started = time.perf_counter()
        try:
            result = self.engine.run(job.graph, files=files, on_event=on_event, should_cancel=should_cancel,
                                     preview=self.options.preview, preview_interval=PREVIEW_INTERVAL,
                                     extra_pnginfo=job.extra.get("extra_pnginfo") or None)
        except Cancelled:
            if heartbeat.lease_lost:
                raise LeaseLost(job.id) from None
            if heartbeat.cancel_requested:
                self.client.cancelled(job)
                log.info("job %s: cancelled", job.id)
            else:
                self.client.release(job, reason="worker shutting down")
                log.info("job %s: handed back (shutdown)", job.id)
            return
        except GraphValidationError as exc:
            self.client.fail(job, code="invalid_graph", message=str(exc))
            return
        except Exception as exc:  # a node failed: report it, keep the worker alive
            node_id = getattr(exc, "node_id", None)
            log.exception("job %s failed", job.id)
            self.client.fail(job, code="node_error" if node_id else "engine_error",
                             message=f"{type(getattr(exc, 'error', exc)).__name__}: {getattr(exc, 'error', exc)}",
                             node_id=node_id)
            return
        heartbeat.finish()  # the first and last steps of every sampler reach the server before the outputs
        if heartbeat.lease_lost:
            raise LeaseLost(job.id)
        outputs = []
        for index, image in enumerate(result.images):
            self.client.upload_output(job, index, image.png)
            outputs.append(OutputDescription(index=index, node_id=image.node_id))
        info = {"seconds": round(time.perf_counter() - started, 3), "device": self.options.device,
                "executed": result.executed, "cached": result.cached}
        self.client.complete(job, outputs=outputs, info=info,
                             model_loads=loads.loads(self._take_engine_load_seconds()))
        log.info("job %s: done in %.2f s, %d image(s)", job.id, info["seconds"], len(outputs))

    def _fetch_files(self, job: ClaimedJob, heartbeat: _Heartbeat, loads: ModelLoadTimer) -> JobFiles:
        models = {}
        for m in job.models:
            with loads.fetching(m.sha256, on_disk=file_cached(self.cache.path(m.sha256), size=m.size)):
                path = fetch_model(cache=self.cache, client=self.client, job_id=job.id, sha256=m.sha256,
                                   size=m.size, lease_lost=lambda: heartbeat.lease_lost, wait=self.stopping.wait)
            models[(m.folder, m.name)] = (path, m.sha256)
        images = {}
        for item in job.inputs:
            path = self._inputs_dir / item.name
            if not path.exists():
                path.write_bytes(self.client.input_image(job, item.name))
            images[item.name] = path
        return JobFiles(models, images)

