"""Schemas of LoRA trainings (`/api/v1/trainings`) and of their worker protocol."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.jobs.records import Job
from sdfleet.jobs.spec import training_of

Number = StrictFloat | StrictInt


#: TrainingConfig's fields as the API takes them; each is checked by the trainer's own rules, naming it
CONFIG_FIELDS = (
    "network_rank", "network_alpha", "train_text_encoder", "unet_lr", "text_encoder_lr", "optimizer", "weight_decay",
    "max_grad_norm", "lr_scheduler", "lr_warmup_steps", "max_train_steps", "epochs", "train_batch_size",
    "gradient_accumulation_steps", "resolution", "enable_bucket", "min_bucket_reso", "max_bucket_reso",
    "random_flip", "caption_dropout_rate", "noise_offset", "min_snr_gamma", "mixed_precision", "seed",
    "save_every_n_steps", "sample_every_n_steps",
)


class TrainingCreate(Strict):
    """A LoRA training. Unset parameters take kohya-like defaults; give `max_train_steps` or `epochs`."""

    name: StrictStr = Field(max_length=255, description="The LoRA's name in the registry (.safetensors added).")
    base_model: StrictStr = Field(max_length=255, description="A checkpoint (SD 1.x, SD 2.x or SDXL) you may use.")
    dataset_id: StrictStr = Field(max_length=64)
    allowed_roles: list[StrictStr] | None = Field(default=None, max_length=64,
                                                  description='Who may use the LoRA ("*": everyone, the default).')
    endpoint: StrictStr | None = Field(default=None, max_length=64,
                                       description='An endpoint whose kinds include "train" (default: chosen).')
    network_rank: StrictInt | None = Field(default=None, description="1-256 (default 16)")
    network_alpha: Number | None = Field(default=None, description="above 0, at most 1024 (default 16)")
    train_text_encoder: StrictBool | None = None
    unet_lr: Number | None = Field(default=None, description="above 0, at most 1 (default 1e-4)")
    text_encoder_lr: Number | None = Field(default=None, description="0-1 (default 5e-5)")
    optimizer: StrictStr | None = Field(default=None, description="AdamW (default) or AdamW8bit (CUDA + bitsandbytes)")
    weight_decay: Number | None = None
    max_grad_norm: Number | None = None
    lr_scheduler: StrictStr | None = Field(default=None, description="constant, constant_with_warmup, linear, "
                                                                      "cosine, cosine_with_restarts, polynomial")
    lr_warmup_steps: StrictInt | None = None
    max_train_steps: StrictInt | None = Field(default=None, description="1-1000000; or give epochs")
    epochs: StrictInt | None = None
    train_batch_size: StrictInt | None = Field(default=None, description="1-64 (default 1)")
    gradient_accumulation_steps: StrictInt | None = None
    resolution: StrictInt | None = Field(default=None, description="a multiple of 64, at most the dataset's "
                                                                   "(its default)")
    enable_bucket: StrictBool | None = Field(default=None, description="kohya's aspect-ratio buckets (default on)")
    min_bucket_reso: StrictInt | None = None
    max_bucket_reso: StrictInt | None = None
    random_flip: StrictBool | None = None
    caption_dropout_rate: Number | None = None
    noise_offset: Number | None = None
    min_snr_gamma: Number | None = None
    mixed_precision: StrictStr | None = Field(default=None, description="no, fp16, bf16 (CUDA; the CPU trains fp32)")
    seed: StrictInt | None = None
    save_every_n_steps: StrictInt | None = Field(default=None, description="checkpoint period (default 100): a "
                                                                           "retried attempt resumes from the last")
    sample_every_n_steps: StrictInt | None = None
    samples: dict[StrictStr, Any] | None = Field(
        default=None, description="Images during training and the evaluation grid (prompts × LoRA weights "
                                  "0/0.5/1): {prompts: [≤ 8 prompts], steps: 1-150, cfg_scale: 0-30, seed, width, "
                                  "height: multiples of 8}")

    def params(self) -> dict[str, Any]:
        """The trainer's parameters that were given."""
        values = {name: getattr(self, name) for name in CONFIG_FIELDS if getattr(self, name) is not None}
        if self.samples is not None:
            values["samples"] = {k: v for k, v in self.samples.items() if v is not None}
        return values


class TrainingAccepted(BaseModel):
    id: str
    status: str


class TrainingProgress(BaseModel):
    step: int
    max_steps: int
    fraction: float
    loss: float | None = None
    lr: float | None = None
    steps_per_second: float | None = None
    eta_seconds: float | None = None


class TrainingLora(BaseModel):
    id: str
    name: str
    sha256: str
    short_hash: str | None = None


class TrainingPublic(BaseModel):
    id: str
    status: str
    name: str
    base_model: str
    base_sha256: str
    dataset_id: str
    dataset_name: str
    dataset_hash: str
    endpoint: str | None
    parameters: dict[str, Any]
    progress: TrainingProgress
    attempts: int
    cancel_requested: bool
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: dict[str, Any] | None
    lora: TrainingLora | None
    info: dict[str, Any] | None = None

    @classmethod
    def of(cls, job: Job, *, metrics: dict[str, float] | None = None) -> TrainingPublic:
        training = training_of(job.spec)
        base, dataset = training.get("base", {}), training.get("dataset", {})
        info = dict(job.summary.info or {}) or None
        lora = info.pop("lora", None) if info else None
        progress = job.progress
        metrics = metrics or {}
        return cls(
            id=job.id, status=job.status.value, name=training.get("lora", {}).get("name", ""),
            base_model=base.get("name", ""), base_sha256=base.get("sha256", ""), dataset_id=dataset.get("id", ""),
            dataset_name=dataset.get("name", ""), dataset_hash=dataset.get("content_hash", ""),
            endpoint=job.endpoint, parameters=training.get("config", {}),
            progress=TrainingProgress(step=progress.value, max_steps=progress.max,
                                      fraction=progress.value / progress.max if progress.max else 0.0,
                                      loss=metrics.get("loss"), lr=metrics.get("lr"),
                                      steps_per_second=metrics.get("steps_per_second"),
                                      eta_seconds=metrics.get("eta_seconds")),
            attempts=job.attempts, cancel_requested=job.cancel_requested, queued_at=job.queued_at,
            started_at=job.started_at, finished_at=job.finished_at, error=job.error,
            lora=TrainingLora(**lora) if lora else None, info=info,
        )


class ArtifactPublic(BaseModel):
    name: str
    size: int
    step: int | None
    url: str


# Worker protocol
class TrainingComplete(Strict):
    fencing_token: StrictInt
    info: dict[str, Any] = Field(default_factory=dict)
