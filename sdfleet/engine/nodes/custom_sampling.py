"""ComfyUI's custom-sampling nodes: schedulers and sigma tools, sampler choice, noise, guiders, SamplerCustom(Advanced).

They expose the engine's sampling loop piece by piece, with ComfyUI's names, inputs, outputs and defaults
(comfy_extras/nodes_custom_sampler.py, nodes_align_your_steps.py). SIGMAS values are 1-D float tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sdfleet.engine import samplers, schedules
from sdfleet.engine.ksampler import NoisePlan, run_sampler
from sdfleet.engine.model_loader import ModelRef
from sdfleet.engine.model_patches import unet_patched
from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    combo_input,
    float_input,
    int_input,
    link_input,
)
from sdfleet.engine.nodes.conditioning import CondEntry
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.sampling import latent_out, model_sampling, prepare_guidance, progress
from sdfleet.engine.noise import comfy_initial_noise

SEED_MAX = 0xFFFFFFFFFFFFFFFF
#: ComfyUI's KarrasScheduler / ExponentialScheduler defaults: SD's sigma range
SIGMA_MAX, SIGMA_MIN = 14.614642, 0.0291675


@dataclass(frozen=True)
class SamplerChoice:
    """A SAMPLER value: an engine sampler name."""

    name: str


@dataclass(frozen=True)
class NoiseChoice:
    """A NOISE value: RandomNoise's seed, or DisableNoise (no initial noise; seed 0 for per-step noise)."""

    seed: int
    enabled: bool = True

    def generate(self, latent: torch.Tensor, batch_index: list[int] | None = None) -> torch.Tensor:
        """The initial noise for a latent, as ComfyUI's Noise_RandomNoise / Noise_EmptyNoise."""
        if not self.enabled:
            return torch.zeros(latent.shape)
        return comfy_initial_noise(latent.shape, self.seed, batch_index)


@dataclass(frozen=True)
class GuiderChoice:
    """A GUIDER value: the model and conditionings, and how they are combined."""

    model: ModelRef
    positive: Sequence[CondEntry]
    negative: Sequence[CondEntry] = ()
    cfg: float = 1.0
    middle: Sequence[CondEntry] | None = None
    cfg2: float = 1.0
    nested: bool = False


# Schedulers and sigmas ---------------------------------------------------------------------------------

def basic_scheduler(ctx: NodeContext, *, model: ModelRef, scheduler: str, steps: int,
                    denoise: float) -> tuple[Any, ...]:
    """BasicScheduler: a KSampler's schedule (denoise d: the last `steps` sigmas of int(steps / d))."""
    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return (torch.zeros(0),)
        total = int(steps / denoise)
    sigmas = schedules.comfy_sigmas(model_sampling(ctx, model), scheduler, total)
    return (sigmas[-(steps + 1):],)


def karras_scheduler(ctx: NodeContext, *, steps: int, sigma_max: float, sigma_min: float,
                     rho: float) -> tuple[Any, ...]:
    """KarrasScheduler."""
    return (schedules.karras(steps, sigma_min, sigma_max, rho),)


def exponential_scheduler(ctx: NodeContext, *, steps: int, sigma_max: float, sigma_min: float) -> tuple[Any, ...]:
    """ExponentialScheduler."""
    return (schedules.exponential(steps, sigma_min, sigma_max),)


def sd_turbo_scheduler(ctx: NodeContext, *, model: ModelRef, steps: int, denoise: float) -> tuple[Any, ...]:
    """SDTurboScheduler: timesteps 999, 899, …, the first int(10 × (1 − denoise)) skipped."""
    return (schedules.turbo(model_sampling(ctx, model), steps, denoise),)


def align_your_steps_scheduler(ctx: NodeContext, *, model_type: str, steps: int, denoise: float) -> tuple[Any, ...]:
    """AlignYourStepsScheduler."""
    return (schedules.align_your_steps(steps, model_type=model_type, denoise=denoise),)


def split_sigmas(ctx: NodeContext, *, sigmas: torch.Tensor, step: int) -> tuple[Any, ...]:
    """SplitSigmas: sigmas up to and including `step`, and from `step` on."""
    return sigmas[:step + 1], sigmas[step:]


def flip_sigmas(ctx: NodeContext, *, sigmas: torch.Tensor) -> tuple[Any, ...]:
    """FlipSigmas: reversed, a leading 0 raised to 0.0001 (for unsampling)."""
    if len(sigmas) == 0:
        return (sigmas,)
    flipped = sigmas.flip(0).clone()
    if flipped[0] == 0:
        flipped[0] = 0.0001
    return (flipped,)


# Sampler, noise, guiders -------------------------------------------------------------------------------

def ksampler_select(ctx: NodeContext, *, sampler_name: str) -> tuple[Any, ...]:
    """KSamplerSelect."""
    return (SamplerChoice(sampler_name),)


def random_noise(ctx: NodeContext, *, noise_seed: int) -> tuple[Any, ...]:
    """RandomNoise."""
    return (NoiseChoice(noise_seed),)


def disable_noise(ctx: NodeContext) -> tuple[Any, ...]:
    """DisableNoise."""
    return (NoiseChoice(0, enabled=False),)


def cfg_guider(ctx: NodeContext, *, model: ModelRef, positive: list[CondEntry], negative: list[CondEntry],
               cfg: float) -> tuple[Any, ...]:
    """CFGGuider."""
    return (GuiderChoice(model, positive, negative, cfg),)


def basic_guider(ctx: NodeContext, *, model: ModelRef, conditioning: list[CondEntry]) -> tuple[Any, ...]:
    """BasicGuider: the positive conditioning only (no guidance)."""
    return (GuiderChoice(model, conditioning),)


def dual_cfg_guider(ctx: NodeContext, *, model: ModelRef, cond1: list[CondEntry], cond2: list[CondEntry],
                    negative: list[CondEntry], cfg_conds: float, cfg_cond2_negative: float,
                    style: str) -> tuple[Any, ...]:
    """DualCFGGuider: cond1 against cond2 by cfg_conds, cond2 against negative by cfg_cond2_negative."""
    return (GuiderChoice(model, cond1, negative, cfg_conds, middle=cond2, cfg2=cfg_cond2_negative,
                         nested=style == "nested"),)


# Sampling ----------------------------------------------------------------------------------------------

def _sample(ctx: NodeContext, guider: GuiderChoice, sampler: SamplerChoice, sigmas: torch.Tensor,
            latent_image: dict, noise: NoiseChoice) -> tuple[Any, ...]:
    dual = {"middle": guider.middle, "cfg2": guider.cfg2, "nested": guider.nested} if guider.middle is not None \
        else {}
    guidance, _ = prepare_guidance(ctx, guider.model, list(guider.positive), list(guider.negative), guider.cfg,
                                   **dual)
    latent = latent_image["samples"]
    initial = noise.generate(latent, latent_image.get("batch_index"))
    ctx.check_cancel()
    with unet_patched(guidance.unet, guider.model.patches):
        result = run_sampler(guidance, sampler.name, sigmas, latent, NoisePlan(initial, noise.seed),
                             noise_mask=latent_image.get("noise_mask"), on_step=progress(ctx))
    out = latent_out(latent_image, result.samples)
    denoised = latent_out(latent_image, result.denoised) if result.denoised is not None else out
    return out, denoised


def sampler_custom(ctx: NodeContext, *, model: ModelRef, add_noise: bool, noise_seed: int, cfg: float,
                   positive: list[CondEntry], negative: list[CondEntry], sampler: SamplerChoice,
                   sigmas: torch.Tensor, latent_image: dict) -> tuple[Any, ...]:
    """SamplerCustom: any sampler on any sigmas, with CFG."""
    return _sample(ctx, GuiderChoice(model, positive, negative, cfg), sampler, sigmas, latent_image,
                   NoiseChoice(noise_seed, enabled=add_noise))


def sampler_custom_advanced(ctx: NodeContext, *, noise: NoiseChoice, guider: GuiderChoice, sampler: SamplerChoice,
                            sigmas: torch.Tensor, latent_image: dict) -> tuple[Any, ...]:
    """SamplerCustomAdvanced: noise, guider, sampler and sigmas from their own nodes."""
    return _sample(ctx, guider, sampler, sigmas, latent_image, noise)


def check_sampler_name(inputs: Any) -> list[tuple[str, str, str]]:
    """Validation: KSamplerSelect's sampler must be one the engine runs."""
    name = inputs.get("sampler_name")
    if isinstance(name, str) and name not in samplers.SAMPLERS:
        return [("sampler_name", "value_not_in_list",
                 f"sampler_name {name!r} is unknown; supported: {', '.join(samplers.sampler_names())}")]
    return []


SIGMAS = OutputSpec("SIGMAS", "SIGMAS")
_SIGMA_RANGE = {"min": 0.0, "max": 5000.0, "step": 0.01, "round": False}
_LATENTS = (OutputSpec("LATENT", "output"), OutputSpec("LATENT", "denoised_output"))
_SCHEDULERS, _SIGMA_TOOLS, _GUIDERS = ("model/sampling/schedulers", "model/sampling/sigmas",
                                       "model/sampling/guiders")

NODES = [
    NodeDefinition(NodeSpec(
        "SamplerCustom",
        (link_input("model", "MODEL"), InputSpec("add_noise", "BOOLEAN", default=True),
         int_input("noise_seed", default=0, max=SEED_MAX, seed=True),
         float_input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01),
         link_input("positive", "CONDITIONING"), link_input("negative", "CONDITIONING"),
         link_input("sampler", "SAMPLER"), link_input("sigmas", "SIGMAS"), link_input("latent_image", "LATENT")),
        _LATENTS, "model/sampling/custom", "SamplerCustom"), sampler_custom),
    NodeDefinition(NodeSpec(
        "BasicScheduler",
        (link_input("model", "MODEL"), combo_input("scheduler", samplers.scheduler_names()),
         int_input("steps", default=20, min=1, max=10000),
         float_input("denoise", default=1.0, min=0.0, max=1.0, step=0.01)),
        (SIGMAS,), _SCHEDULERS, "BasicScheduler"), basic_scheduler),
    NodeDefinition(NodeSpec(
        "KarrasScheduler",
        (int_input("steps", default=20, min=1, max=10000),
         float_input("sigma_max", default=SIGMA_MAX, **_SIGMA_RANGE),
         float_input("sigma_min", default=SIGMA_MIN, **_SIGMA_RANGE),
         float_input("rho", default=7.0, min=0.0, max=100.0, step=0.01, round=False)),
        (SIGMAS,), _SCHEDULERS, "KarrasScheduler"), karras_scheduler),
    NodeDefinition(NodeSpec(
        "ExponentialScheduler",
        (int_input("steps", default=20, min=1, max=10000),
         float_input("sigma_max", default=SIGMA_MAX, **_SIGMA_RANGE),
         float_input("sigma_min", default=SIGMA_MIN, **_SIGMA_RANGE)),
        (SIGMAS,), _SCHEDULERS, "ExponentialScheduler"), exponential_scheduler),
    NodeDefinition(NodeSpec(
        "SDTurboScheduler",
        (link_input("model", "MODEL"), int_input("steps", default=1, min=1, max=10),
         float_input("denoise", default=1.0, min=0.0, max=1.0, step=0.01)),
        (SIGMAS,), _SCHEDULERS, "SDTurboScheduler"), sd_turbo_scheduler),
    NodeDefinition(NodeSpec(
        "AlignYourStepsScheduler",
        (combo_input("model_type", ("SD1", "SDXL", "SVD")), int_input("steps", default=10, min=1, max=10000),
         float_input("denoise", default=1.0, min=0.0, max=1.0, step=0.01)),
        (SIGMAS,), _SCHEDULERS, "AlignYourStepsScheduler"), align_your_steps_scheduler),
    NodeDefinition(NodeSpec(
        "KSamplerSelect", (combo_input("sampler_name", samplers.sampler_names()),),
        (OutputSpec("SAMPLER", "SAMPLER"),), "model/sampling/samplers", "KSamplerSelect"), ksampler_select,
        check=check_sampler_name),
    NodeDefinition(NodeSpec(
        "SplitSigmas", (link_input("sigmas", "SIGMAS"), int_input("step", default=0, min=0, max=10000)),
        (OutputSpec("SIGMAS", "high_sigmas"), OutputSpec("SIGMAS", "low_sigmas")), _SIGMA_TOOLS, "SplitSigmas"),
        split_sigmas),
    NodeDefinition(NodeSpec(
        "FlipSigmas", (link_input("sigmas", "SIGMAS"),), (SIGMAS,), _SIGMA_TOOLS, "FlipSigmas"), flip_sigmas),
    NodeDefinition(NodeSpec(
        "CFGGuider",
        (link_input("model", "MODEL"), link_input("positive", "CONDITIONING"),
         link_input("negative", "CONDITIONING"),
         float_input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01)),
        (OutputSpec("GUIDER", "GUIDER"),), _GUIDERS, "CFG Guider"), cfg_guider),
    NodeDefinition(NodeSpec(
        "DualCFGGuider",
        (link_input("model", "MODEL"), link_input("cond1", "CONDITIONING"), link_input("cond2", "CONDITIONING"),
         link_input("negative", "CONDITIONING"),
         float_input("cfg_conds", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01),
         float_input("cfg_cond2_negative", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01),
         combo_input("style", ("regular", "nested"))),
        (OutputSpec("GUIDER", "GUIDER"),), _GUIDERS, "Dual CFG Guider"), dual_cfg_guider),
    NodeDefinition(NodeSpec(
        "BasicGuider", (link_input("model", "MODEL"), link_input("conditioning", "CONDITIONING")),
        (OutputSpec("GUIDER", "GUIDER"),), _GUIDERS, "Basic Guider"), basic_guider),
    NodeDefinition(NodeSpec(
        "RandomNoise", (int_input("noise_seed", default=0, max=SEED_MAX, seed=True),),
        (OutputSpec("NOISE", "NOISE"),), "model/sampling/noise", "RandomNoise"), random_noise),
    NodeDefinition(NodeSpec(
        "DisableNoise", (), (OutputSpec("NOISE", "NOISE"),), "model/sampling/noise", "DisableNoise"),
        disable_noise),
    NodeDefinition(NodeSpec(
        "SamplerCustomAdvanced",
        (link_input("noise", "NOISE"), link_input("guider", "GUIDER"), link_input("sampler", "SAMPLER"),
         link_input("sigmas", "SIGMAS"), link_input("latent_image", "LATENT")),
        _LATENTS, "model/sampling/custom", "SamplerCustomAdvanced"), sampler_custom_advanced),
]
