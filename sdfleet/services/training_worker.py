"""LoRA trainings, worker side: a worker holding a `train` job reads its dataset images, stores and reads back
resumable checkpoints, stores artifacts (LoRA, samples, grid), and completes it — which registers the LoRA.

Every call presents the job's fencing token: a worker whose lease was taken over writes nothing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sdfleet.domain.checkpoints import ModelType
from sdfleet.domain.datasets import image_key
from sdfleet.domain.errors import Conflict, Gone, InvalidInput, NotFound
from sdfleet.domain.trainings import artifact_key, checkpoint_key, training_prefix
from sdfleet.domain.workers import WorkerRecord
from sdfleet.jobs.queue import JobQueue, StaleLease
from sdfleet.jobs.records import Job, JobKind
from sdfleet.jobs.spec import training_of

log = logging.getLogger("sdfleet.trainings")
MAX_CHECKPOINT_BYTES = 8 << 30
MAX_ARTIFACT_BYTES = 2 << 30


@dataclass(frozen=True)
class StoredCheckpoint:
    """The latest checkpoint of a training: its step, size and bytes."""

    step: int
    size: int
    chunks: Iterator[bytes]


@dataclass
class TrainingWorkerService:
    """Server side of `/api/v1/worker/jobs/{id}/training/…`."""

    queue: JobQueue
    objects: Any
    checkpoints: Any  #: CheckpointService: registers the trained LoRA
    workers: Any  #: WorkerService: lease checks and the end-of-job bookkeeping
    clock: Callable[[], datetime]

    def _training(self, worker: WorkerRecord, job_id: str, token: int) -> Job:
        job = self.workers.held(worker, job_id, token)
        if job.kind is not JobKind.TRAIN:
            raise NotFound(f"job {job_id} is not a training")
        return job

    # 1. Inputs

    def open_dataset_image(self, worker: WorkerRecord, job_id: str, *, token: int, sha256: str) -> Iterator[bytes]:
        """An image the held training pinned (by hash)."""
        job = self._training(worker, job_id, token)
        dataset = training_of(job.spec)["dataset"]
        if sha256 not in {i["sha256"] for i in dataset["images"]}:
            raise NotFound(f"training {job_id} has no image {sha256}")
        try:
            return self.objects.open_range(image_key(dataset["id"], sha256))
        except KeyError:
            raise Gone(f"image {sha256} of dataset {dataset['id']} was deleted after the training was queued") \
                from None

    # 2. Checkpoints

    def latest_checkpoint(self, worker: WorkerRecord, job_id: str, *, token: int) -> StoredCheckpoint | None:
        """The last checkpoint an earlier attempt stored (None: start from step 0)."""
        job = self._training(worker, job_id, token)
        found = _latest(self.objects, job.id)
        if found is None:
            return None
        step, info = found
        return StoredCheckpoint(step=step, size=info.size, chunks=self.objects.open_range(info.key))

    def store_checkpoint(self, worker: WorkerRecord, job_id: str, *, token: int, step: int, stream: BinaryIO) -> None:
        """Keep a checkpoint at `step`, then drop the older ones (the latest is always complete)."""
        job = self._training(worker, job_id, token)
        if not 1 <= step <= 10_000_000:
            raise InvalidInput(f"step must be 1-10000000, got {step}", field="step")
        key = checkpoint_key(job.id, step)
        self.objects.put(key, stream, content_type="application/octet-stream")
        for info in list(self.objects.list(training_prefix(job.id) + "checkpoints/")):
            if info.key != key:
                with contextlib.suppress(Exception):
                    self.objects.delete(info.key)

    # 3. Results

    def store_artifact(self, worker: WorkerRecord, job_id: str, *, token: int, name: str, stream: BinaryIO) -> None:
        """Keep a file of the training: `lora.safetensors`, `grid.png` or `samples/NNNNNNNN-N.png`."""
        job = self._training(worker, job_id, token)
        key = artifact_key(job.id, name)
        content_type = "image/png" if name.endswith(".png") else "application/octet-stream"
        self.objects.put(key, stream, content_type=content_type)

    def complete(self, worker: WorkerRecord, job_id: str, *, token: int, info: dict[str, Any]) -> Job:
        """Register the uploaded LoRA in the registry (the trainer's name and visibility, lineage in its metadata)
        and finish the job with it."""
        job = self._training(worker, job_id, token)
        key = artifact_key(job.id, "lora.safetensors")
        if not self.objects.exists(key):
            raise InvalidInput("upload lora.safetensors before completing", field="artifacts")
        wanted = training_of(job.spec)["lora"]
        intake = self.checkpoints.intake.inspect_object(key, declared=ModelType.LORA)
        name = wanted["name"]
        try:
            lora = self._register(intake, job=job, name=name, roles=wanted["allowed_roles"])
        except Conflict:  # the name was taken while the training ran: keep the LoRA under a name of its own
            name = f"{name.removesuffix('.safetensors')}-{job.id[-8:].lower()}.safetensors"
            lora = self._register(intake, job=job, name=name, roles=wanted["allowed_roles"])
        record = {"id": lora.id, "name": lora.name, "sha256": lora.sha256, "short_hash": lora.short_hash}
        try:
            done = self.queue.complete(job.id, token=token, outputs=[], now=self.clock(),
                                       info={**info, "lora": record})
        except StaleLease:
            raise Conflict(f"job {job_id}: fencing token {token} is stale") from None
        log.info("training %s: LoRA %s registered (%s)", job.id, lora.name, lora.sha256[:12])
        self.workers.finished(worker, job.id, done)
        return done

    def _register(self, intake, *, job: Job, name: str, roles: list[str]):
        return self.checkpoints.register(intake, name=name, model_type=ModelType.LORA, allowed_roles=tuple(roles),
                                         created_by=job.user_id, source="training")


def _latest(objects, job_id: str):
    """(step, ObjectInfo) of the newest checkpoint, or None."""
    best = None
    for info in objects.list(training_prefix(job_id) + "checkpoints/"):
        digits = info.key.rsplit("/", 1)[1].removesuffix(".pt")
        if digits.isdigit() and (best is None or int(digits) > best[0]):
            best = (int(digits), info)
    return best
