"""Training parameters: one vocabulary from the API to the trainer (kohya sd-scripts' names where they exist)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("AdamW", "AdamW8bit")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
MIXED_PRECISIONS = ("no", "fp16", "bf16")


class TrainingConfigError(ValueError):
    """A parameter the trainer cannot use; `field` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, kw_only=True)
class SampleSettings:
    """Images made during training (every `sample_every_n_steps`) and for the evaluation grid at the end."""

    prompts: tuple[str, ...] = ()
    steps: int = 20
    cfg_scale: float = 7.0
    seed: int = 0
    width: int | None = None  #: default: the training resolution
    height: int | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Everything that decides what a training run computes (and so what a resumed run must match)."""

    # Network
    network_rank: int = 16
    network_alpha: float = 16.0
    train_text_encoder: bool = False
    # Optimisation
    unet_lr: float = 1e-4
    text_encoder_lr: float = 5e-5
    optimizer: str = "AdamW"
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    max_train_steps: int | None = None
    epochs: int | None = None
    train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    # Data
    resolution: int = 512
    enable_bucket: bool = True
    min_bucket_reso: int | None = None  #: default: half the resolution, at least 64
    max_bucket_reso: int | None = None  #: default: twice the resolution
    random_flip: bool = False
    caption_dropout_rate: float = 0.0
    # Loss
    noise_offset: float = 0.0
    min_snr_gamma: float | None = None
    # Run
    mixed_precision: str = "no"
    seed: int = 0
    save_every_n_steps: int = 100
    sample_every_n_steps: int | None = None
    samples: SampleSettings = field(default_factory=SampleSettings)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Build from the job's parameters (unknown names are refused, naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TrainingConfigError(f"unknown training parameter(s): {', '.join(unknown)}", field=unknown[0])
        config = cls(**values)
        config.check()
        return config

    def __post_init__(self) -> None:
        if isinstance(self.samples, dict):  # as JSON carries it
            values = dict(self.samples)
            values["prompts"] = tuple(values.get("prompts") or ())
            object.__setattr__(self, "samples", SampleSettings(**values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (the inverse of `from_dict`)."""
        values = dataclasses.asdict(self)
        values["samples"]["prompts"] = list(self.samples.prompts)
        return values

    def fingerprint(self) -> str:
        """sha256 of the parameters that shape the computation (a checkpoint resumes only a matching run)."""
        values = self.to_dict()
        for name in ("save_every_n_steps", "sample_every_n_steps", "samples"):
            values.pop(name)
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()

    def check(self) -> None:
        """Fail on the first parameter out of range, naming it."""
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise TrainingConfigError(f"{name} must be {expected}, got {getattr(self, name)!r}", field=name)

        need(1 <= self.network_rank <= 256, "network_rank", "1-256")
        need(0 < self.network_alpha <= 1024, "network_alpha", "above 0 and at most 1024")
        need(0 < self.unet_lr <= 1.0, "unet_lr", "above 0 and at most 1")
        need(0 <= self.text_encoder_lr <= 1.0, "text_encoder_lr", "0-1")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}")
        need(self.lr_scheduler in LR_SCHEDULERS, "lr_scheduler", f"one of {', '.join(LR_SCHEDULERS)}")
        need(self.lr_warmup_steps >= 0, "lr_warmup_steps", "0 or more")
        need((self.max_train_steps is None) != (self.epochs is None), "max_train_steps",
             "given, or epochs given instead (exactly one of the two)")
        need(self.max_train_steps is None or 1 <= self.max_train_steps <= 1_000_000, "max_train_steps", "1-1000000")
        need(self.epochs is None or 1 <= self.epochs <= 10_000, "epochs", "1-10000")
        need(1 <= self.train_batch_size <= 64, "train_batch_size", "1-64")
        need(1 <= self.gradient_accumulation_steps <= 128, "gradient_accumulation_steps", "1-128")
        need(64 <= self.resolution <= 2048 and self.resolution % 64 == 0, "resolution",
             "a multiple of 64 from 64 to 2048")
        need(0 <= self.caption_dropout_rate <= 1, "caption_dropout_rate", "0-1")
        need(0 <= self.noise_offset <= 1, "noise_offset", "0-1")
        need(self.min_snr_gamma is None or 0 < self.min_snr_gamma <= 100, "min_snr_gamma", "above 0, at most 100")
        need(self.mixed_precision in MIXED_PRECISIONS, "mixed_precision", f"one of {', '.join(MIXED_PRECISIONS)}")
        need(1 <= self.save_every_n_steps, "save_every_n_steps", "1 or more")
        need(self.sample_every_n_steps is None or self.sample_every_n_steps >= 1, "sample_every_n_steps", "1 or more")
        need(0 <= self.seed < 2**63, "seed", "0 to 2^63-1")

    @property
    def bucket_range(self) -> tuple[int, int]:
        """(smallest, largest) bucket side."""
        low = self.min_bucket_reso or max(64, self.resolution // 2 // 64 * 64)
        high = self.max_bucket_reso or self.resolution * 2
        return low, high
