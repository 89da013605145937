"""A `train` job on a worker: download the base model and the dataset by hash, resume from the last checkpoint
an earlier attempt stored, train (progress with loss, lr, speed and ETA in heartbeats; checkpoints every
`save_every_n_steps` and samples uploaded as they come), then upload the LoRA and the evaluation grid and complete.

Cancel: stop at the next step, store a checkpoint and the LoRA as they are, acknowledge. Shutdown: store a
checkpoint and hand the job back, so the next attempt resumes there."""

from __future__ import annotations

import io
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sdfleet.worker.client import ClaimedJob, InputMissing, LeaseLost, WorkerClient
from sdfleet.worker.model_cache import HashMismatch, ModelFileCache
from sdfleet.worker.model_fetch import fetch_model

log = logging.getLogger("sdfleet.worker.training")
MAX_LOSS_POINTS = 1000


def _png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and math.isfinite(v)}


def thin(points: list[tuple[int, float]], limit: int = MAX_LOSS_POINTS) -> list[list[float]]:
    """At most `limit` (step, loss) points, evenly spread, the last one kept."""
    if len(points) <= limit:
        return [[s, v] for s, v in points]
    every = math.ceil(len(points) / limit)
    kept = points[::every]
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return [[s, v] for s, v in kept]


@dataclass
class TrainingRun:
    """One attempt at one training job."""

    client: WorkerClient
    cache: ModelFileCache
    device: str
    job: ClaimedJob
    heartbeat: object  #: the job's heartbeat thread (progress, cancel and lease flags)
    should_stop: Callable[[], bool]
    epoch: int = 0
    last_saved: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sdfleet-training-")))

    def run(self) -> None:
        try:
            self._run()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _fail(self, code: str, message: str) -> None:
        log.warning("training %s failed: %s: %s", self.job.id, code, message)
        self.client.fail(self.job, code=code, message=message)

    def _run(self) -> None:
        from sdfleet.engine.training.base_model import UnsupportedBaseModel
        from sdfleet.engine.training.config import TrainingConfigError

        training = self.job.training or {}
        # 1. Files: the base model (model cache, by sha256) and the dataset's images.
        try:
            base_path, items = self._fetch(training)
        except HashMismatch as exc:
            return self._fail("model_hash_mismatch", str(exc))
        except InputMissing as exc:
            return self._fail("dataset_image_missing", str(exc))
        # 2. The trainer, resumed from the last checkpoint when an earlier attempt stored one.
        try:
            trainer, resumed_from = self._trainer(training, base_path, items)
        except TrainingConfigError as exc:
            return self._fail("invalid_parameters", f"{exc.field}: {exc}")
        except (UnsupportedBaseModel, ValueError, OSError) as exc:
            return self._fail("training_error", f"{type(exc).__name__}: {exc}")
        # 3. Train.
        started, started_at = time.perf_counter(), datetime.now(UTC)
        try:
            finished = trainer.run(self._hooks(trainer))
        except LeaseLost:
            raise
        except Exception as exc:  # a step failed: report it, keep the worker alive
            log.exception("training %s failed", self.job.id)
            return self._fail("training_error", f"{type(exc).__name__}: {exc}")
        if not finished:
            return self._stopped(trainer, training)
        # 4. Results: the evaluation grid, the LoRA, then completion (the server registers the LoRA).
        try:
            if trainer.config.samples.prompts:
                from sdfleet.engine.training.sampling import evaluation_grid

                grid = evaluation_grid(trainer, list(trainer.config.samples.prompts))
                self.client.put_training_artifact(self.job, "grid.png", _png(grid))
            self.client.put_training_artifact(self.job, "lora.safetensors",
                                              self._lora_bytes(trainer, training, started_at=started_at))
        except LeaseLost:
            raise
        except Exception as exc:
            log.exception("training %s: saving the results failed", self.job.id)
            return self._fail("training_error", f"saving the results failed: {type(exc).__name__}: {exc}")
        losses = trainer.losses
        info = {"steps": trainer.step, "max_steps": trainer.max_steps, "resumed_from_step": resumed_from,
                "steps_run": trainer.step - resumed_from, "seconds": round(time.perf_counter() - started, 3),
                "device": self.device, "precision": trainer.precision, "epoch": self.epoch,
                "final_loss": losses[-1][1] if losses else None, "losses": thin(losses)}
        self.heartbeat.finish()  # the last step reaches the server (and SSE clients) before the completion
        if self.heartbeat.lease_lost:
            raise LeaseLost(self.job.id)
        self.client.complete_training(self.job, info=info)
        log.info("training %s: done, %d steps (%d this attempt) in %.1f s", self.job.id, trainer.step,
                 trainer.step - resumed_from, info["seconds"])

    def _fetch(self, training: dict):
        from sdfleet.engine.training.data import TrainingItem

        base = training["base"]
        base_path = fetch_model(cache=self.cache, client=self.client, job_id=self.job.id, sha256=base["sha256"],
                                size=base["size"], lease_lost=lambda: self.heartbeat.lease_lost, wait=self._wait)
        items = []
        images = self.workdir / "images"
        images.mkdir(parents=True, exist_ok=True)
        for entry in training["dataset"]["images"]:
            path = images / entry["sha256"]
            with path.open("wb") as handle:
                for chunk in self.client.training_image(self.job, entry["sha256"]):
                    handle.write(chunk)
            items.append(TrainingItem(path=path, caption=entry["caption"], repeats=entry["repeats"]))
        return base_path, items

    def _wait(self, seconds: float) -> bool:
        """Sleep between download tries; True when the training should stop (cancel, drain, lost lease)."""
        time.sleep(seconds)
        return self.should_stop()

    def _trainer(self, training: dict, base_path: Path, items: list):
        from sdfleet.engine.training.base_model import load_base_model
        from sdfleet.engine.training.config import TrainingConfig
        from sdfleet.engine.training.data import ImageSet
        from sdfleet.engine.training.state import read_state
        from sdfleet.engine.training.trainer import DTYPES, Trainer, precision_for

        config = TrainingConfig.from_dict(training["config"])
        base = load_base_model(base_path, device=self.device, dtype=DTYPES[precision_for(config, self.device)])
        images = ImageSet(items, resolution=config.resolution, enable_bucket=config.enable_bucket,
                          bucket_range=config.bucket_range)
        trainer = Trainer(base, images, config, device=self.device)
        found = self.client.training_checkpoint(self.job)
        if found is None:
            return trainer, 0
        step, data = found
        trainer.restore(read_state(data))
        self.last_saved = trainer.step
        log.info("training %s: resuming from step %d", self.job.id, trainer.step)
        self.heartbeat.progress(trainer.step, trainer.max_steps, None, None, {"resumed_from_step": float(step)})
        return trainer, trainer.step

    def _hooks(self, trainer):
        from sdfleet.engine.training.state import dump_state
        from sdfleet.engine.training.trainer import TrainingHooks

        def on_progress(p) -> None:
            self.epoch = p.epoch
            self.heartbeat.progress(p.step, p.max_steps, None, None, _finite(
                {"loss": p.loss, "lr": p.lr, "steps_per_second": p.steps_per_second, "eta_seconds": p.eta_seconds,
                 "epoch": p.epoch}))

        def on_checkpoint(state) -> None:
            self.client.put_training_checkpoint(self.job, state.step, dump_state(state))
            self.last_saved = state.step

        def on_samples(step: int, images: list) -> None:
            for i, image in enumerate(images):
                self.client.put_training_artifact(self.job, f"samples/{step:08d}-{i}.png", _png(image))

        return TrainingHooks(on_progress=on_progress, should_stop=self.should_stop, on_checkpoint=on_checkpoint,
                             on_samples=on_samples)

    def _stopped(self, trainer, training: dict) -> None:
        """Cancelled, lease lost or shutting down: keep what was trained, then say so."""
        from sdfleet.engine.training.state import dump_state

        if self.heartbeat.lease_lost:
            raise LeaseLost(self.job.id)
        if trainer.step > self.last_saved:
            self.client.put_training_checkpoint(self.job, trainer.step, dump_state(trainer.state()))
        if self.heartbeat.cancel_requested:
            if trainer.step > 0:
                self.client.put_training_artifact(self.job, "lora.safetensors", self._lora_bytes(trainer, training))
            self.client.cancelled(self.job)
            log.info("training %s: cancelled at step %d", self.job.id, trainer.step)
        else:
            self.client.release(self.job, reason=f"worker shutting down at step {trainer.step}")
            log.info("training %s: handed back at step %d (shutdown)", self.job.id, trainer.step)

    def _lora_bytes(self, trainer, training: dict, *, started_at: datetime | None = None) -> bytes:
        from sdfleet.engine.training.metadata import Lineage, kohya_metadata

        base, dataset, lora = training["base"], training["dataset"], training["lora"]
        lineage = Lineage(base_sha256=base["sha256"], base_name=base["name"], dataset_id=dataset["id"],
                          dataset_hash=dataset["content_hash"], job_id=self.job.id)
        metadata = kohya_metadata(
            config=trainer.config, family=trainer.base.family, lineage=lineage,
            output_name=lora["name"].removesuffix(".safetensors"), steps=trainer.step, epoch=self.epoch,
            captions=[i["caption"] for i in dataset["images"]], image_count=len(dataset["images"]),
            precision=trainer.precision, started_at=started_at)
        path = self.workdir / "lora.safetensors"
        trainer.save_lora(path, metadata=metadata)
        return path.read_bytes()
