"""The denoising loop: diffusers' pipeline loop with ComfyUI's step range, denoise and noise-mask semantics."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, SchedulerMixin, UNet2DConditionModel
from diffusers.utils.torch_utils import randn_tensor

from sdfleet.engine.nodes.conditioning import CondEntry, conds_at


@dataclass
class StepRange:
    """Which steps of which schedule to run: `total` steps, running [start, end)."""

    total: int
    start: int
    end: int

    @classmethod
    def from_denoise(cls, steps: int, denoise: float) -> StepRange:
        """ComfyUI's KSampler: denoise d runs the last `steps` of an int(steps / d)-step schedule."""
        if denoise >= 0.9999:
            return cls(steps, 0, steps)
        if denoise <= 0:
            return cls(steps, steps, steps)
        total = int(steps / denoise)
        return cls(total, total - steps, total)


@dataclass
class SamplingJob:
    """Everything one sampler call needs (tensors already on the device)."""

    unet: UNet2DConditionModel
    scheduler: SchedulerMixin
    latent: torch.Tensor
    positive: Sequence[CondEntry]
    negative: Sequence[CondEntry]
    cfg: float
    seed: int
    steps: StepRange
    add_noise: bool = True
    noise_mask: torch.Tensor | None = None
    force_full_denoise: bool = False
    controlnet: Callable[[CondEntry], ControlNetModel] | None = None


def _time_ids(unet: UNet2DConditionModel, pooled_dim: int, height: int, width: int, *,
              negative: bool) -> list[float]:
    count = (unet.add_embedding.linear_1.in_features - pooled_dim) // unet.config.addition_time_embed_dim
    if count == 5:  # SDXL refiner: aesthetic score instead of the target size
        return [height, width, 0, 0, 2.5 if negative else 6.0]
    return [height, width, 0, 0, height, width]


@dataclass
class PreparedConds:
    """The conditioning of one step as UNet batches: rows [start, end) of the model input share a length."""

    blocks: list[tuple[int, int, torch.Tensor, dict | None]]
    sizes: list[int]
    keys: tuple[int, ...]


def _cond_keys(groups: Sequence[Sequence[CondEntry]]) -> tuple[int, ...]:
    return tuple(id(entry.embeds) for group in groups for entry in group)


def _prepare_conds(unet: UNet2DConditionModel, groups: Sequence[Sequence[CondEntry]], batch: int, use_cfg: bool,
                   height: int, width: int, dtype: torch.dtype, device: torch.device) -> PreparedConds:
    """Stack the negative then positive entries, each repeated per latent, as diffusers batches them.

    Entries whose token counts differ (long prompts) go to the UNet in separate calls, as A1111 does
    by default: padding one of them would change what cross-attention sees."""
    embeds, pooled, time_ids, sizes = [], [], [], []
    is_xl = unet.config.addition_embed_type == "text_time"
    for g, entries in enumerate(groups):
        sizes.append(len(entries))
        for entry in entries:
            embeds.append(entry.embeds.to(device, dtype).expand(batch, -1, -1))
            if is_xl:
                if entry.pooled is None:
                    raise ValueError("this SDXL model needs pooled embeddings: encode the prompt with its CLIP")
                pooled.append(entry.pooled.to(device, dtype).expand(batch, -1))
                ids = _time_ids(unet, entry.pooled.shape[-1], height, width, negative=use_cfg and g == 0)
                time_ids.append(torch.tensor([ids], dtype=dtype, device=device).expand(batch, -1))
    blocks, first = [], 0
    for k in range(1, len(embeds) + 1):
        if k == len(embeds) or embeds[k].shape[1] != embeds[first].shape[1]:
            added = {"text_embeds": torch.cat(pooled[first:k]), "time_ids": torch.cat(time_ids[first:k])} \
                if is_xl else None
            blocks.append((first * batch, k * batch, torch.cat(embeds[first:k]), added))
            first = k
    return PreparedConds(blocks, sizes, _cond_keys(groups))


def _step_kwargs(scheduler: SchedulerMixin, generator: torch.Generator) -> dict:
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict = {}
    if "eta" in params:
        kwargs["eta"] = 0.0
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


def _control_residuals(job: SamplingJob, model_in: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor,
                       added: dict | None, fraction: float) -> dict:
    entry = next((e for e in job.positive if e.control is not None), None)
    if entry is None or job.controlnet is None:
        return {}
    control = entry.control
    if not control.start_percent <= fraction <= control.end_percent:
        return {}
    model = job.controlnet(entry)
    hint = control.image.movedim(-1, 1).to(model_in.device, model_in.dtype)
    height, width = model_in.shape[-2] * 8, model_in.shape[-1] * 8
    if hint.shape[-2:] != (height, width):
        hint = F.interpolate(hint, size=(height, width), mode="bilinear", align_corners=False)
    hint = hint.repeat(model_in.shape[0] // hint.shape[0] + 1, 1, 1, 1)[: model_in.shape[0]]
    down, mid = model(model_in, t, encoder_hidden_states=embeds, controlnet_cond=hint,
                      conditioning_scale=control.strength, added_cond_kwargs=added, return_dict=False)
    return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}


def sample(job: SamplingJob, *, on_step: Callable[[int, int, torch.Tensor], None]) -> torch.Tensor:
    """Run the sampler and return the latents; `on_step(value, max, latents)` after every step."""
    unet, scheduler = job.unet, job.scheduler
    device, dtype = unet.device, unet.dtype
    latent = job.latent.to(device, dtype)
    batch, _, lat_h, lat_w = latent.shape
    generator = torch.Generator("cpu").manual_seed(job.seed)

    # 1. Timesteps of the requested range
    scheduler.set_timesteps(job.steps.total, device=device)
    order = scheduler.order
    begin = job.steps.start * order
    timesteps = scheduler.timesteps[begin: job.steps.end * order] if job.steps.end < job.steps.total \
        else scheduler.timesteps[begin:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    if len(timesteps) == 0:
        return job.latent

    # 2. Initial latents: pure noise from the start, else the image noised to the first timestep
    noise = randn_tensor(latent.shape, generator=generator, device=device, dtype=dtype)
    full = job.steps.start == 0
    if not job.add_noise:
        latents = latent
    elif full:
        latents = latent + noise * scheduler.init_noise_sigma if latent.any() else noise * scheduler.init_noise_sigma
    else:
        latents = scheduler.add_noise(latent, noise, timesteps[:1].repeat(batch))

    # 3. Conditioning batches (A1111 prompt editing changes them between steps)
    use_cfg = job.cfg > 1.0
    step_kwargs = _step_kwargs(scheduler, generator)
    mask = None
    if job.noise_mask is not None:
        m = job.noise_mask.reshape(-1, 1, *job.noise_mask.shape[-2:]).float()
        mask = F.interpolate(m, size=(lat_h, lat_w), mode="bilinear", align_corners=False).to(device, dtype)
    conds: PreparedConds | None = None

    # 4. Denoising loop
    count = len(timesteps)
    for i, t in enumerate(timesteps):
        # Each iteration is one guided model evaluation, the step count A1111's schedules use.
        groups = [conds_at(job.negative, i), conds_at(job.positive, i)] if use_cfg else [conds_at(job.positive, i)]
        if conds is None or conds.keys != _cond_keys(groups):
            conds = _prepare_conds(unet, groups, batch, use_cfg, lat_h * 8, lat_w * 8, dtype, device)
        copies = sum(conds.sizes)
        model_in = torch.cat([latents] * copies) if copies > 1 else latents
        model_in = scheduler.scale_model_input(model_in, t)
        preds = []
        for start, end, embeds, added in conds.blocks:
            part = model_in[start:end] if len(conds.blocks) > 1 else model_in
            residuals = _control_residuals(job, part, t, embeds, added, i / count)
            preds.append(unet(part, t, encoder_hidden_states=embeds, added_cond_kwargs=added, return_dict=False,
                              **residuals)[0])
        pred = torch.cat(preds) if len(preds) > 1 else preds[0]
        pred = _guide(pred, conds.sizes, batch, job.cfg, use_cfg)
        out = scheduler.step(pred, t, latents, **step_kwargs, return_dict=True)
        latents = out.prev_sample
        if mask is not None:
            original = latent
            if i < count - 1:
                original = scheduler.add_noise(latent, noise, timesteps[i + 1: i + 2].repeat(batch))
            latents = (1 - mask) * original + mask * latents
        if i == count - 1 and job.force_full_denoise and job.steps.end < job.steps.total:
            x0 = getattr(out, "pred_original_sample", None)
            if x0 is not None:
                latents = x0 if mask is None else (1 - mask) * latent + mask * x0
        on_step(i + 1, count, latents)
    return latents


def _guide(pred: torch.Tensor, sizes: list[int], batch: int, cfg: float, use_cfg: bool) -> torch.Tensor:
    """Average each group's entries (ConditioningCombine), then classifier-free guidance."""
    chunks = list(pred.split(batch))
    means, start = [], 0
    for size in sizes:
        group = chunks[start: start + size]
        means.append(group[0] if size == 1 else torch.stack(group).mean(0))
        start += size
    if not use_cfg:
        return means[0]
    uncond, text = means
    return uncond + cfg * (text - uncond)
