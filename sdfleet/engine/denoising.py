"""The denoiser samplers call: x, sigma → the clean-latent estimate, with classifier-free guidance over conditionings.

It is ComfyUI's CFGGuider + `calc_cond_batch` (and A1111's CFGDenoiser) on a diffusers UNet: every active
conditioning entry is run (batched where shapes allow), entries of one kind are averaged, and the negative
estimate is pushed towards the positive one by the CFG scale. Per-step conditioning: before each call the
denoiser asks every entry `at_step(calls so far)` (A1111's prompt editing counts model evaluations) and
skips entries outside their sampling percentage range (ComfyUI's ConditioningSetTimestepRange).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, UNet2DConditionModel

from sdfleet.engine.cond_regions import Placement, place
from sdfleet.engine.model_sampling import ModelSampling
from sdfleet.engine.nodes.conditioning import CondEntry, SizeConditioning

POSITIVE, NEGATIVE, MIDDLE = 0, 1, 2
#: (cond x0, uncond x0, scale, x, sigma) → guided x0; ComfyUI's `sampler_cfg_function` (RescaleCFG sets one).
CfgFunction = Callable[[torch.Tensor, torch.Tensor, float, torch.Tensor, float], torch.Tensor]


def classifier_free(cond: torch.Tensor, uncond: torch.Tensor, scale: float, x: torch.Tensor,
                    sigma: float) -> torch.Tensor:
    """Plain classifier-free guidance."""
    return uncond + (cond - uncond) * scale


@dataclass(frozen=True)
class Guidance:
    """What the denoiser combines: the UNet, its noise levels, the conditionings and the CFG scales.

    With `middle` it is ComfyUI's DualCFGGuider: `cfg` weighs positive against middle, `cfg2` middle
    against negative (`nested`: positive-vs-middle guidance inside the negative one).
    """

    unet: UNet2DConditionModel
    sampling: ModelSampling
    positive: Sequence[CondEntry]
    negative: Sequence[CondEntry]
    cfg: float
    #: ComfyUI gives the UNet the nearest integer timestep; A1111 the interpolated one.
    quantize_timesteps: bool = True
    controlnet: Callable[[CondEntry], ControlNetModel] | None = None
    middle: Sequence[CondEntry] | None = None
    cfg2: float = 1.0
    nested: bool = False
    cfg_function: CfgFunction | None = None

    def needed(self) -> set[int]:
        """The conditionings to evaluate: ComfyUI skips those a scale of 1 multiplies by zero."""
        if self.middle is None:
            return {POSITIVE} if math.isclose(self.cfg, 1.0) else {POSITIVE, NEGATIVE}
        if self.nested:
            return {POSITIVE, MIDDLE, NEGATIVE}
        if not math.isclose(self.cfg2, 1.0):
            return {POSITIVE, MIDDLE, NEGATIVE}
        return {POSITIVE} if math.isclose(self.cfg, 1.0) else {POSITIVE, MIDDLE}


@dataclass(frozen=True)
class InpaintBlend:
    """Keep the unmasked area of `latent` (mask 1 = repaint), as ComfyUI's KSamplerX0Inpaint or A1111's CFGDenoiser.

    ComfyUI also replaces the model input's unmasked area with the latent noised to the current sigma
    (`noise` is the noise it uses); A1111 only blends the estimate.
    """

    latent: torch.Tensor
    mask: torch.Tensor  # [B, C, H, W], 1 where the sampler may change the latent
    noise: torch.Tensor | None = None


def prepare_mask(mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """ComfyUI's `prepare_mask`: bilinear to the latent size, one copy per channel, repeated to the batch."""
    m = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    m = F.interpolate(m, size=(shape[2], shape[3]), mode="bilinear")
    m = torch.cat([m] * shape[1], dim=1)
    if m.shape[0] < shape[0]:
        m = m.repeat(math.ceil(shape[0] / m.shape[0]), 1, 1, 1)
    return m[: shape[0]]


def _time_ids(unet: UNet2DConditionModel, pooled_dim: int, height: int, width: int, *, negative: bool,
              size: SizeConditioning | None = None) -> list[float]:
    """SDXL's micro-conditioning: the image size unless CLIPTextEncodeSDXL(Refiner) set others (ComfyUI)."""
    count = (unet.add_embedding.linear_1.in_features - pooled_dim) // unet.config.addition_time_embed_dim
    size = size or SizeConditioning()
    h = size.height if size.height is not None else height
    w = size.width if size.width is not None else width
    if count == 5:  # SDXL refiner: aesthetic score instead of the target size
        score = size.aesthetic_score if size.aesthetic_score is not None else (2.5 if negative else 6.0)
        return [h, w, size.crop_h, size.crop_w, score]
    target_h = size.target_height if size.target_height is not None else h
    target_w = size.target_width if size.target_width is not None else w
    return [h, w, size.crop_h, size.crop_w, target_h, target_w]


@dataclass
class _Batch:
    """One UNet call's conditioning: entries of equal token length and area sharing one ControlNet."""

    members: list[tuple[int, CondEntry]]
    embeds: torch.Tensor
    added: dict | None
    placement: Placement | None = None  # None: the whole latent
    weights: list[torch.Tensor] | None = None  # per member, where some entry is area/mask conditioned


class Denoiser:
    """The model a sampler steps with: `denoiser(x, sigma)` returns the guided x0 estimate (float32)."""

    def __init__(self, guidance: Guidance, *, inpaint: InpaintBlend | None = None,
                 blend_input: bool = True) -> None:
        self.g = guidance
        self.inpaint = inpaint
        self.blend_input = blend_input
        self.calls = 0
        self.needed = guidance.needed()
        unet = guidance.unet
        self.device, self.dtype = unet.device, unet.dtype
        self.is_xl = unet.config.addition_embed_type == "text_time"
        ms = guidance.sampling
        self._ranges = {id(e): (ms.percent_to_sigma(e.start_percent), ms.percent_to_sigma(e.end_percent))
                        for e in (*guidance.positive, *guidance.negative, *(guidance.middle or ()))}
        self._batches: dict[tuple, list[_Batch]] = {}
        self._timesteps: dict[float, torch.Tensor] = {}
        self._placements: dict[tuple, Placement | None] = {}

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(())
        if self.inpaint is not None and self.blend_input and self.inpaint.noise is not None:
            keep = 1 - self.inpaint.mask
            x = x * self.inpaint.mask + (self.inpaint.latent + self.inpaint.noise * sigma) * keep
        out = self._combine(self._estimates(x, sigma), x, float(sigma))
        self.calls += 1
        if self.inpaint is not None:
            out = out * self.inpaint.mask + self.inpaint.latent * (1 - self.inpaint.mask)
        return out

    def _combine(self, estimates: list[torch.Tensor | None], x: torch.Tensor, sigma: float) -> torch.Tensor:
        """Guidance over the estimates (a kind with no active entry contributes zeros, as in ComfyUI)."""
        pos, neg, mid = (torch.zeros_like(x) if e is None else e for e in estimates)
        g, cfg = self.g, self.g.cfg_function or classifier_free
        if g.middle is None:
            return cfg(pos, neg, g.cfg, x, sigma) if NEGATIVE in self.needed else pos
        if g.nested:
            return neg + g.cfg2 * (cfg(pos, mid, g.cfg, x, sigma) - neg)
        return cfg(mid, neg, g.cfg2, x, sigma) + (pos - mid) * g.cfg

    def _active(self, entry: CondEntry, sigma: float) -> bool:
        start, end = self._ranges[id(entry)]
        return end <= sigma <= start

    def _timestep(self, sigma: torch.Tensor, value: float) -> torch.Tensor:
        """The UNet's timestep for a sigma (samplers revisit the same few sigmas: computed once each)."""
        t = self._timesteps.get(value)
        if t is None:
            t = self.g.sampling.timestep(sigma.reshape(1).cpu(), quantize=self.g.quantize_timesteps).to(self.device)
            self._timesteps[value] = t
        return t

    def _estimates(self, x: torch.Tensor, sigma: torch.Tensor) -> list[torch.Tensor | None]:
        """Each kind's (positive, negative, middle) averaged x0 estimate, None where nothing was evaluated."""
        value = float(sigma)
        # negative rows first, as diffusers batches them
        kinds = [(kind, entries) for kind, entries in ((NEGATIVE, self.g.negative), (MIDDLE, self.g.middle),
                                                       (POSITIVE, self.g.positive)) if kind in self.needed]
        active = [(kind, entry.at_step(self.calls)) for kind, entries in kinds for entry in entries
                  if self._active(entry, value)]
        active = [(kind, entry) for kind, entry in active if self._placement(entry, x.shape) is not False]
        key = tuple((kind, id(entry.embeds), id(entry.region)) for kind, entry in active)
        if key not in self._batches:
            self._batches[key] = self._plan(active, x.shape)
        plans = self._batches[key]
        if any(plan.weights is not None for plan in plans):
            return self._weighted_estimates(plans, x, sigma, value)
        batch = x.shape[0]
        sums: list[torch.Tensor | None] = [None, None, None]
        counts = [0, 0, 0]
        ms = self.g.sampling
        model_x = (x * (1.0 / (value ** 2 + 1.0) ** 0.5)).to(self.dtype)
        t = self._timestep(sigma, value)
        for plan in plans:
            out = self._run_unet(plan, model_x, t, value)
            for k, (kind, _) in enumerate(plan.members):
                estimate = ms.denoised(x, out[k * batch:(k + 1) * batch], value)
                sums[kind] = estimate if sums[kind] is None else sums[kind] + estimate
                counts[kind] += 1
        return [s / c if c > 1 else s for s, c in zip(sums, counts, strict=True)]

    def _run_unet(self, plan: _Batch, model_x: torch.Tensor, t: torch.Tensor, value: float) -> torch.Tensor:
        """One UNet call for a plan's members (on its area of the latent); float32 output, members stacked."""
        n = len(plan.members)
        window = plan.placement.window(model_x) if plan.placement is not None else model_x
        x_in = window.repeat(n, 1, 1, 1) if n > 1 else window
        t_in = t.expand(x_in.shape[0])
        residuals = self._control(plan, x_in, t_in, value)
        return self.g.unet(x_in, t_in, encoder_hidden_states=plan.embeds, added_cond_kwargs=plan.added,
                           return_dict=False, **residuals)[0].float()

    def _weighted_estimates(self, plans: list[_Batch], x: torch.Tensor, sigma: torch.Tensor,
                            value: float) -> list[torch.Tensor | None]:
        """ComfyUI's `calc_cond_batch` with areas and masks: per pixel, the weighted mean of the predictions of
        every entry covering it (weights: mask × strength, faded area edges); zero where none does."""
        batch = x.shape[0]
        sums: list[torch.Tensor | None] = [None, None, None]
        weights: list[torch.Tensor | None] = [None, None, None]
        ms = self.g.sampling
        model_x = (x * (1.0 / (value ** 2 + 1.0) ** 0.5)).to(self.dtype)
        t = self._timestep(sigma, value)
        for plan in plans:
            out = self._run_unet(plan, model_x, t, value)
            placement = plan.placement
            x_window = placement.window(x) if placement is not None else x
            for k, (kind, _) in enumerate(plan.members):
                if sums[kind] is None:
                    sums[kind] = torch.zeros_like(x)
                    weights[kind] = torch.full_like(x, 1e-37)
                weight = plan.weights[k]  # type: ignore[index]
                estimate = ms.denoised(x_window, out[k * batch:(k + 1) * batch], value) * weight
                if placement is None:
                    sums[kind] += estimate
                    weights[kind] += weight  # type: ignore[operator]
                else:
                    placement.window(sums[kind]).add_(estimate)
                    placement.window(weights[kind]).add_(weight)
        return [s / w if s is not None else None for s, w in zip(sums, weights, strict=True)]

    def _placement(self, entry: CondEntry, shape: torch.Size) -> Placement | None | bool:
        """An area/mask entry's placement on this latent (False: its area misses the latent; None: plain)."""
        if entry.region.plain:
            return None
        key = (id(entry.region), tuple(shape))
        if key not in self._placements:
            self._placements[key] = place(entry.region, shape, device=self.device)
        found = self._placements[key]
        return False if found is None else found

    def _plan(self, active: list[tuple[int, CondEntry]], shape: torch.Size) -> list[_Batch]:
        """Group the active entries into UNet calls: same token length (A1111 and ComfyUI run prompts of
        different lengths separately: padding would change what cross-attention sees) and one ControlNet."""
        groups: dict[tuple, list[tuple[int, CondEntry]]] = {}
        placements: dict[tuple, Placement | None] = {}
        for kind, entry in active:
            placement = self._placement(entry, shape)
            assert placement is not False
            area = placement.key if placement is not None else None
            key = (entry.embeds.shape[1], id(entry.control) if entry.control is not None else None, area)
            groups.setdefault(key, []).append((kind, entry))
            placements[key] = placements.get(key) or placement
        weighted = any(not entry.region.plain for _, entry in active)
        batch, height, width = shape[0], shape[2] * 8, shape[3] * 8
        plans = []
        for group_key, group in groups.items():
            embeds = torch.cat([e.embeds.to(self.device, self.dtype).expand(batch, -1, -1) for _, e in group])
            added = None
            if self.is_xl:
                pooled, time_ids = [], []
                for kind, entry in group:
                    if entry.pooled is None:
                        raise ValueError("this SDXL model needs pooled embeddings: encode the prompt with its CLIP")
                    pooled.append(entry.pooled.to(self.device, self.dtype).expand(batch, -1))
                    ids = _time_ids(self.g.unet, entry.pooled.shape[-1], height, width,
                                    negative=kind != POSITIVE, size=entry.size)
                    time_ids.append(torch.tensor([ids], dtype=self.dtype, device=self.device).expand(batch, -1))
                added = {"text_embeds": torch.cat(pooled), "time_ids": torch.cat(time_ids)}
            placement = placements[group_key]
            member_weights = None
            if weighted:
                member_weights = [self._weight(entry, placement, shape) for _, entry in group]
            plans.append(_Batch(group, embeds, added, placement, member_weights))
        return plans

    def _weight(self, entry: CondEntry, placement: Placement | None, shape: torch.Size) -> torch.Tensor:
        """An entry's weight on its window: its placement's, or its strength over the whole latent."""
        own = self._placement(entry, shape)
        if own:
            return own.weight  # type: ignore[union-attr]
        return torch.full(tuple(shape), float(entry.region.strength), device=self.device)

    def _control(self, plan: _Batch, x_in: torch.Tensor, t: torch.Tensor, sigma: float) -> dict:
        entry = plan.members[0][1]
        control = entry.control
        if control is None or self.g.controlnet is None:
            return {}
        ms = self.g.sampling
        if sigma > ms.percent_to_sigma(control.start_percent) or sigma < ms.percent_to_sigma(control.end_percent):
            return {}
        model = self.g.controlnet(entry)
        hint = control.image.movedim(-1, 1).to(x_in.device, x_in.dtype)
        height, width = x_in.shape[-2] * 8, x_in.shape[-1] * 8
        if hint.shape[-2:] != (height, width):
            hint = F.interpolate(hint, size=(height, width), mode="bilinear", align_corners=False)
        hint = hint.repeat(x_in.shape[0] // hint.shape[0] + 1, 1, 1, 1)[: x_in.shape[0]]
        down, mid = model(x_in, t, encoder_hidden_states=plan.embeds, controlnet_cond=hint,
                          conditioning_scale=control.strength, added_cond_kwargs=plan.added, return_dict=False)
        if control.soft:  # the A1111 extension's 13 soft weights, zipped with the residuals as it does
            scales = [0.825 ** float(12 - i) for i in range(13)][: len(down) + 1]
            down, mid = [d * s for d, s in zip(down, scales, strict=False)], mid * scales[len(down)]
        if control.positive_only:
            rows = torch.tensor([float(kind == POSITIVE) for kind, _ in plan.members], device=x_in.device,
                                dtype=x_in.dtype).repeat_interleave(x_in.shape[0] // len(plan.members))
            down, mid = [d * rows.view(-1, 1, 1, 1) for d in down], mid * rows.view(-1, 1, 1, 1)
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
