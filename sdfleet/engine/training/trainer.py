"""The LoRA training loop: diffusers + peft, resumable bit for bit.

Every random draw of a micro-batch (timesteps, noise, flips, caption dropout) comes from a generator seeded by
(seed, micro-batch number), and the batch order of an epoch from (seed, epoch): a checkpoint needs only the
step, the adapter weights, the optimizer, the LR scheduler and the data position to continue exactly as the
uninterrupted run would have."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler
from diffusers.training_utils import compute_snr

from sdfleet.engine.training import network
from sdfleet.engine.training.base_model import BaseModel
from sdfleet.engine.training.buckets import BatchSchedule, step_generator
from sdfleet.engine.training.config import TrainingConfig, TrainingConfigError
from sdfleet.engine.training.data import ImageSet, LatentCache
from sdfleet.engine.training.state import TrainingState, capture_rng, restore_rng
from sdfleet.engine.training.text import CaptionCache, encode_captions, sdxl_time_ids

DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TrainingProgress:
    """Where a run is after an optimizer step."""

    step: int
    max_steps: int
    epoch: int
    loss: float
    lr: float
    steps_per_second: float
    eta_seconds: float


@dataclass
class TrainingHooks:
    """What the caller is told and asked while a run goes (every hook optional)."""

    on_progress: Callable[[TrainingProgress], None] | None = None
    should_stop: Callable[[], bool] | None = None
    #: a checkpoint every `save_every_n_steps`: persist it to resume from
    on_checkpoint: Callable[[TrainingState], None] | None = None
    #: sample images every `sample_every_n_steps`
    on_samples: Callable[[int, list], None] | None = None


def precision_for(config: TrainingConfig, device: str) -> str:
    """The precision a device runs: mixed precision on CUDA only (fp32 on the CPU, where it is exact)."""
    return config.mixed_precision if device.startswith("cuda") else "no"


class Trainer:
    """One LoRA training run on one device."""

    def __init__(self, base: BaseModel, images: ImageSet, config: TrainingConfig, *, device: str) -> None:
        # 1. Precision and the network.
        self.base, self.images, self.config, self.device = base, images, config, device
        self.precision = precision_for(config, device)
        self.trained = network.attach(base, rank=config.network_rank, alpha=config.network_alpha,
                                      train_text_encoder=config.train_text_encoder, init_seed=config.seed)
        # 2. Data: batches drawn from the seed; latents and (frozen) caption encodings computed once.
        self.schedule = BatchSchedule(buckets_of=images.buckets_of, repeats=[i.repeats for i in images.items],
                                      batch_size=config.train_batch_size, seed=config.seed)
        steps_per_epoch = math.ceil(self.schedule.batches_per_epoch / config.gradient_accumulation_steps)
        self.max_steps = config.max_train_steps or config.epochs * steps_per_epoch
        self.latents = LatentCache(images, base.vae, device=device, dtype=torch.float32)
        self.captions = None if config.train_text_encoder else CaptionCache(base, device=device)
        self.noise_scheduler = DDPMScheduler.from_config(base.scheduler_config)
        # 3. Optimizer and schedule.
        groups = [{"params": _trainable(base.unet), "lr": config.unet_lr}]
        for name in self.trained[1:]:
            groups.append({"params": _trainable(getattr(base, name)), "lr": config.text_encoder_lr})
        self.optimizer = _optimizer(config, groups, device)
        self.lr_scheduler = get_scheduler(config.lr_scheduler, optimizer=self.optimizer,
                                          num_warmup_steps=config.lr_warmup_steps, num_training_steps=self.max_steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self._unet_dtype = base.unet.dtype  # a property that walks every module: read it once
        self.step = 0
        self.losses: list[tuple[int, float]] = []

    # Checkpoints

    def state(self) -> TrainingState:
        """Everything needed to continue from here."""
        return TrainingState(
            step=self.step, micro_step=self.step * self.config.gradient_accumulation_steps,
            adapters=network.adapter_state(self.base, self.trained), optimizer=self.optimizer.state_dict(),
            lr_scheduler=self.lr_scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else None, rng=capture_rng(),
            losses=list(self.losses), fingerprint=self.config.fingerprint())

    def restore(self, state: TrainingState) -> None:
        """Continue from a checkpoint of a run with the same parameters."""
        if state.fingerprint != self.config.fingerprint():
            raise TrainingConfigError("the checkpoint belongs to a run with other parameters", field="checkpoint")
        network.load_adapter_state(self.base, state.adapters)
        self.optimizer.load_state_dict(state.optimizer)
        self.lr_scheduler.load_state_dict(state.lr_scheduler)
        if self.scaler is not None and state.scaler is not None:
            self.scaler.load_state_dict(state.scaler)
        restore_rng(state.rng)
        self.step = state.step
        self.losses = list(state.losses)

    # Training

    def run(self, hooks: TrainingHooks | None = None) -> bool:
        """Train to `max_steps`; returns False when `should_stop` stopped it first."""
        hooks = hooks or TrainingHooks()
        config = self.config
        started, first_step, epoch = time.perf_counter(), self.step, 0
        self._train_mode()
        while self.step < self.max_steps:
            if hooks.should_stop is not None and hooks.should_stop():
                return False
            loss, epoch = self.train_step()
            if hooks.on_progress is not None:
                rate = (self.step - first_step) / max(time.perf_counter() - started, 1e-9)
                hooks.on_progress(TrainingProgress(
                    step=self.step, max_steps=self.max_steps, epoch=epoch, loss=loss,
                    lr=self.lr_scheduler.get_last_lr()[0], steps_per_second=rate,
                    eta_seconds=(self.max_steps - self.step) / rate if rate > 0 else 0.0))
            if hooks.on_checkpoint is not None and self.step % config.save_every_n_steps == 0 \
                    and self.step < self.max_steps:
                hooks.on_checkpoint(self.state())
            every = config.sample_every_n_steps
            if hooks.on_samples is not None and every and self.step % every == 0 and config.samples.prompts:
                from sdfleet.engine.training.sampling import sample_images

                hooks.on_samples(self.step, sample_images(self, config.samples.prompts))
                self._train_mode()
        return True

    def _train_mode(self) -> None:
        # Once per run, not per step: `.train()` walks every module (~30 ms on the tiny UNet with adapters).
        for name in self.trained:
            getattr(self.base, name).train()

    def train_step(self) -> tuple[float, int]:
        """One optimizer step over `gradient_accumulation_steps` micro-batches; returns (mean loss, epoch)."""
        accumulate = self.config.gradient_accumulation_steps
        total, epoch = 0.0, 0
        for i in range(accumulate):
            micro = self.step * accumulate + i
            epoch, batch = self.schedule.batch(micro)
            with torch.autocast(self.device.split(":")[0], dtype=DTYPES[self.precision],
                                enabled=self.precision != "no"):
                loss = self._loss(micro, batch) / accumulate
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += loss.item()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.losses.append((self.step, total))
        return total, epoch

    def _loss(self, micro: int, batch: list[int]) -> torch.Tensor:
        config, base = self.config, self.base
        generator = step_generator(config.seed, micro)
        # 1. Random draws of this micro-batch, all from its own generator, in a fixed order.
        size = len(batch)
        flips = (torch.rand(size, generator=generator) < 0.5).tolist() if config.random_flip else [False] * size
        dropped = (torch.rand(size, generator=generator) < config.caption_dropout_rate).tolist()
        latents = torch.stack([self.latents.get(i, flip=f) for i, f in zip(batch, flips, strict=True)])
        noise = torch.randn(latents.shape, generator=generator)
        if config.noise_offset:
            noise += config.noise_offset * torch.randn((size, latents.shape[1], 1, 1), generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (size,), generator=generator)
        noise, timesteps = noise.to(self.device), timesteps.to(self.device)
        # 2. Noised latents and the target the UNet must predict.
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        # 3. Conditioning.
        captions = ["" if drop else self.images.items[i].caption for i, drop in zip(batch, dropped, strict=True)]
        if self.captions is not None:
            hidden, pooled = self.captions.get(captions)
        else:
            hidden, pooled = encode_captions(base, captions, device=self.device)
        extra = None
        if base.is_xl:
            ids = []
            for index, flip in zip(batch, flips, strict=True):
                placement, (width, height) = self.images.placements[index], self.images.sizes[index]
                top, left = placement.crop
                if flip:
                    left = placement.resized[0] - left - placement.bucket[0]
                ids.append(sdxl_time_ids(original=(height, width), crop=(top, left),
                                         target=(placement.bucket[1], placement.bucket[0])))
            extra = {"text_embeds": pooled, "time_ids": torch.tensor(ids, device=self.device, dtype=hidden.dtype)}
        # 4. Prediction and loss (min-SNR weighting when asked).
        unet_dtype = self._unet_dtype if self.precision == "no" else noisy.dtype
        prediction = base.unet(noisy.to(unet_dtype), timesteps, hidden, added_cond_kwargs=extra).sample
        if config.min_snr_gamma is None:
            return F.mse_loss(prediction.float(), target.float(), reduction="mean")
        snr = compute_snr(self.noise_scheduler, timesteps)
        weights = torch.clamp(snr, max=config.min_snr_gamma)
        weights = weights / (snr + 1) if self.noise_scheduler.config.prediction_type == "v_prediction" \
            else weights / snr
        per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        return (per_sample * weights).mean()

    # Results

    def adapter_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """The trained LoRA weights (peft names)."""
        return network.adapter_state(self.base, self.trained)

    def save_lora(self, path, *, metadata: dict[str, str], dtype: torch.dtype = torch.float16):
        """Write the LoRA as it is now, in kohya's layout (fp16 as kohya saves by default)."""
        return network.save_lora(path, self.adapter_state(), prefixes=network.kohya_prefixes(self.base),
                                 alpha=self.config.network_alpha, metadata=metadata, dtype=dtype)


def _trainable(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def _optimizer(config: TrainingConfig, groups: list[dict], device: str) -> torch.optim.Optimizer:
    if config.optimizer == "AdamW":
        # Many small LoRA tensors: one fused kernel on CUDA, multi-tensor ops on the CPU.
        fast = {"fused": True} if device.startswith("cuda") else {"foreach": True}
        return torch.optim.AdamW(groups, weight_decay=config.weight_decay, **fast)
    try:
        import bitsandbytes
    except ImportError:
        raise TrainingConfigError("optimizer AdamW8bit needs bitsandbytes, which this worker does not have; use "
                                  "AdamW", field="optimizer") from None
    if not device.startswith("cuda"):
        raise TrainingConfigError(f"optimizer AdamW8bit needs a CUDA device; this worker trains on {device}; use "
                                  "AdamW", field="optimizer")
    return bitsandbytes.optim.AdamW8bit(groups, weight_decay=config.weight_decay)
