"""LoRA trainings, owner side: submit (every field checked, naming it), list, get, cancel, delete, events and
artifacts (`train:all`). The worker side (datasets, checkpoints, artifacts, completion) is `training_worker.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.checkpoints import SAFE_EXTENSIONS, Checkpoint, ModelType, check_model_name
from sdfleet.domain.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from sdfleet.domain.ids import new_id
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.domain.trainings import (
    MAX_PROMPT_LENGTH,
    MAX_SAMPLE_PROMPTS,
    check_family,
    training_prefix,
)
from sdfleet.engine.training.config import TrainingConfig, TrainingConfigError
from sdfleet.jobs.queue import JobQueue, submit_once
from sdfleet.jobs.records import EventType, Job, JobEvent, JobKind, JobStatus, NewJob
from sdfleet.jobs.spec import JobSummary, ModelPin, TrainSpec, training_of
from sdfleet.services.authorization import authorize, fetch_owned
from sdfleet.services.notifier import job_topic, queue_topic

CHECKPOINTS = "checkpoints/"


@dataclass(frozen=True)
class TrainingRequest:
    """A training as the caller asks for it (validated by the service)."""

    name: str  #: the LoRA's registry name (`.safetensors` added when missing)
    base_model: str  #: a checkpoint name the caller may use
    dataset_id: str
    params: dict[str, Any] = field(default_factory=dict)  #: TrainingConfig fields; unset ones take defaults
    allowed_roles: list[str] | None = None  #: who may see the LoRA (default: everyone, as any model)
    endpoint: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Artifact:
    """A file a training stored: the LoRA, the evaluation grid, samples, checkpoints."""

    name: str
    size: int
    step: int | None = None


@dataclass(frozen=True)
class TrainingLimits:
    """Limits checked before queueing."""

    max_queued_per_user: int = 200
    max_attempts: int = 3


@dataclass
class TrainingService:
    """Everything a user does with their trainings. Another user's training is always 404."""

    queue: JobQueue
    objects: Any
    checkpoints: Any  #: CheckpointService: resolves the base model, registers the LoRA
    datasets: Any  #: DatasetService: the dataset's manifest
    router: Any  #: EndpointRouting (kind "train")
    endpoint_devices: Callable[[str], tuple[str, ...]]
    notifier: Any
    clock: Callable[[], datetime]
    limits: TrainingLimits = field(default_factory=TrainingLimits)
    #: whether the optimizer `AdamW8bit` (bitsandbytes) can run on these devices
    eight_bit_usable: Callable[[tuple[str, ...]], bool] = lambda devices: any(d.startswith("cuda") for d in devices)

    # 1. Submission

    def submit(self, principal: Principal, request: TrainingRequest, *, body_hash: str | None = None) -> Job:
        """Check every field (naming the bad one), pin the base model and the dataset, queue a `train` job."""
        authorize(principal, Permission.TRAIN_ALL)
        # 1. The LoRA's name and who may see it.
        name = request.name if request.name.lower().endswith(SAFE_EXTENSIONS) else f"{request.name}.safetensors"
        check_model_name(name)
        self.checkpoints.check_name_free(ModelType.LORA, name, principal)
        roles = list(self.checkpoints.default_roles(principal, request.allowed_roles))
        # 2. The dataset (another user's private one is not found) and the base model.
        manifest = self.datasets.manifest(principal, request.dataset_id)
        dataset = manifest.dataset
        try:
            base = self.checkpoints.resolve(principal, model_type=ModelType.CHECKPOINT.value, name=request.base_model)
        except NotFound:
            raise InvalidInput(f"base_model {request.base_model!r} is not a checkpoint you may use",
                               field="base_model") from None
        # 3. The parameters, as the trainer will read them.
        params = dict(request.params)
        params.setdefault("resolution", dataset.resolution)
        _check_samples(params.get("samples"))
        try:
            config = TrainingConfig.from_dict(params)
        except TrainingConfigError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        except TypeError as exc:
            raise InvalidInput(f"bad training parameter: {exc}", field="params") from None
        if config.resolution > dataset.resolution:
            raise InvalidInput(f"resolution must not exceed the dataset's ({dataset.resolution}: its images were "
                               f"checked for that size), got {config.resolution}", field="resolution")
        check_family(base.architecture, base_name=base.name, resolution=config.resolution)
        # 4. Limits, then the endpoint: one whose workers may train, that the caller may use.
        queued = self.queue.count(user_id=principal.user_id, statuses=(JobStatus.QUEUED,))
        if queued >= self.limits.max_queued_per_user:
            raise QuotaExceeded(f"you have {queued} queued jobs; the limit is {self.limits.max_queued_per_user}")
        endpoint = self.router.route(principal, requested=request.endpoint, model_sha256s=[base.sha256],
                                     kind=JobKind.TRAIN.value)
        if config.optimizer == "AdamW8bit" and not self.eight_bit_usable(self.endpoint_devices(endpoint)):
            raise InvalidInput(f"optimizer AdamW8bit needs bitsandbytes on a CUDA device; endpoint {endpoint!r} "
                               f"trains on {', '.join(self.endpoint_devices(endpoint))}: use AdamW",
                               field="optimizer")
        # 5. Queue it.
        training = {
            "base": {"name": base.name, "sha256": base.sha256, "size": base.size, "family": base.architecture},
            "dataset": {"id": dataset.id, "name": dataset.name, "content_hash": dataset.content_hash,
                        "images": [{"sha256": i.sha256, "caption": i.caption, "repeats": i.repeats,
                                    "filename": i.filename} for i in manifest.images]},
            "config": config.to_dict(),
            "lora": {"name": name, "allowed_roles": roles},
        }
        spec = TrainSpec(models=(ModelPin(folder="checkpoints", name=base.name, sha256=base.sha256, size=base.size),),
                         training=training)
        summary = JobSummary(source="api", name=name, model=base.name, dataset_id=dataset.id,
                             dataset_name=dataset.name, max_train_steps=config.max_train_steps, epochs=config.epochs)
        new = NewJob(id=new_id(), user_id=principal.user_id, endpoint=endpoint, spec=spec,
                     summary=summary, max_attempts=self.limits.max_attempts,
                     idempotency_key=request.idempotency_key, request_hash=body_hash)
        job = submit_once(self.queue, new, now=self.clock())
        if job.id == new.id:  # a new job, not the one a repeated Idempotency-Key made
            self.notifier.notify(queue_topic(endpoint))
        return job

    # 2. Reading

    def get(self, principal: Principal, job_id: str) -> Job:
        """The caller's training; anyone else's is not found."""
        return fetch_owned(principal, Permission.TRAIN_ALL, job_id, fetch=self.queue.get, what="training",
                           accept=lambda job: job.kind is JobKind.TRAIN)

    def list(self, principal: Principal, page: PageRequest, *, status: JobStatus | None = None) -> Page[Job]:
        """The caller's trainings, newest first."""
        authorize(principal, Permission.TRAIN_ALL)
        return self.queue.list_for_user(principal.user_id, page, status=status, kind=JobKind.TRAIN)

    def events_after(self, principal: Principal, job_id: str, seq: int) -> list[JobEvent]:
        """Events of the caller's training after `seq` (SSE, the loss curve)."""
        self.get(principal, job_id)
        return self.queue.events_after(job_id, seq, limit=2000)

    def latest_metrics(self, job: Job) -> dict[str, float] | None:
        """The loss, lr, speed and ETA the last progress event carried (None before the first step)."""
        if job.status is not JobStatus.RUNNING or job.progress.value == 0:
            return None
        last = self.queue.last_event(job.id, EventType.PROGRESS)
        return last.data.get("metrics") if last else None

    def artifacts(self, principal: Principal, job_id: str) -> list[Artifact]:
        """The files the training stored (LoRA, grid, samples, checkpoints), by name."""
        job = self.get(principal, job_id)
        prefix = training_prefix(job.id)
        found = []
        for info in self.objects.list(prefix):
            name = info.key[len(prefix):]
            step = None
            if name.startswith(CHECKPOINTS) or name.startswith("samples/"):
                digits = name.rsplit("/", 1)[1][:8]
                step = int(digits) if digits.isdigit() else None
            found.append(Artifact(name=name, size=info.size, step=step))
        return found

    def open_artifact(self, principal: Principal, job_id: str, name: str) -> tuple[Artifact, Iterator[bytes]]:
        """One stored file of the caller's training."""
        found = next((a for a in self.artifacts(principal, job_id) if a.name == name), None)
        if found is None:
            raise NotFound(f"training {job_id!r} has no file {name!r}")
        return found, self.objects.open_range(training_prefix(job_id) + name)

    # 3. Changing

    def cancel(self, principal: Principal, job_id: str) -> Job:
        """Queued: cancelled now. Running: stopped at the next step; its last checkpoint is kept."""
        job = self.get(principal, job_id)
        if job.status.finished:
            return job
        job = self.queue.cancel(job_id, now=self.clock())
        self.notifier.notify(job_topic(job_id))
        return job

    def delete(self, principal: Principal, job_id: str) -> None:
        """Remove a finished training's record and files (the LoRA it registered stays in the registry)."""
        job = self.get(principal, job_id)
        if not job.status.finished:
            raise Conflict(f"training {job_id!r} is {job.status.value}; cancel it first",
                           details={"status": job.status.value})
        self.queue.delete(job_id)
        self.objects.delete_prefix(training_prefix(job_id))
        self.notifier.notify(job_topic(job_id))


@dataclass
class TrainingPins:
    """Why a dataset or a base checkpoint may not be deleted: the unfinished trainings that use it (delete hooks
    of the registry and of datasets, built before them from the queue alone)."""

    queue: JobQueue

    def unfinished(self) -> list[Job]:
        """Queued and running trainings of every user."""
        return self.queue.unfinished(kind=JobKind.TRAIN)

    def datasets_pinned(self, dataset_id: str) -> list[str]:
        """The trainings that use this dataset."""
        return [f"training {j.id} ({j.status.value}) uses it" for j in self.unfinished()
                if training_of(j.spec).get("dataset", {}).get("id") == dataset_id]

    def checkpoints_pinned(self, checkpoint: Checkpoint) -> list[str]:
        """The trainings that train on this checkpoint's file."""
        return [f"training {j.id} ({j.status.value}) trains on it" for j in self.unfinished()
                if training_of(j.spec).get("base", {}).get("sha256") == checkpoint.sha256]


def _check_samples(samples: object) -> None:
    """Sample prompts and their settings (the trainer takes them as they are)."""
    if samples is None:
        return
    if not isinstance(samples, dict):
        raise InvalidInput("samples must be an object (prompts, steps, cfg_scale, seed, width, height)",
                           field="samples")
    prompts = samples.get("prompts") or []
    if not isinstance(prompts, list | tuple) or len(prompts) > MAX_SAMPLE_PROMPTS or any(
            not isinstance(p, str) or not p.strip() or len(p) > MAX_PROMPT_LENGTH for p in prompts):
        raise InvalidInput(f"samples.prompts must list at most {MAX_SAMPLE_PROMPTS} prompts of 1-"
                           f"{MAX_PROMPT_LENGTH} characters", field="samples.prompts")
    bounds = {"steps": (1, 150), "cfg_scale": (0, 30), "seed": (0, 2**63 - 1), "width": (64, 2048),
              "height": (64, 2048)}
    unknown = sorted(set(samples) - set(bounds) - {"prompts"})
    if unknown:
        raise InvalidInput(f"unknown sample setting(s): {', '.join(unknown)}", field=f"samples.{unknown[0]}")
    for name, (low, high) in bounds.items():
        value = samples.get(name)
        if value is None:
            continue
        kinds = int | float if name == "cfg_scale" else int
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            raise InvalidInput(f"samples.{name} must be {'a number' if name == 'cfg_scale' else 'an integer'} "
                               f"{low}-{high}, got {value!r}", field=f"samples.{name}")
        if name in ("width", "height") and value % 8:
            raise InvalidInput(f"samples.{name} must be a multiple of 8, got {value}", field=f"samples.{name}")


def lora_record(job: Job) -> dict[str, Any] | None:
    """The LoRA a finished training registered ({id, name, sha256}), from its summary."""
    return (job.summary.info or {}).get("lora")
