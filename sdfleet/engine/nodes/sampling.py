"""Sampler nodes: KSampler and KSamplerAdvanced (ComfyUI's semantics) and KSamplerA1111 (A1111's)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from sdfleet.engine import samplers, schedules
from sdfleet.engine.a1111_sampling import A1111Plan, fixed_steps, sample_a1111
from sdfleet.engine.denoising import Guidance
from sdfleet.engine.k_solvers import SolverOptions
from sdfleet.engine.ksampler import NoisePlan, StepPlan, comfy_sigmas, run_sampler
from sdfleet.engine.model_loader import Checkpoint, ModelRef
from sdfleet.engine.model_patches import cfg_function_for, model_sampling_for, unet_patched
from sdfleet.engine.model_sampling import ModelSampling
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
from sdfleet.engine.noise import A1111Seeds, comfy_initial_noise
from sdfleet.engine.sampler_names import A1111_SAMPLERS


def model_sampling(ctx: NodeContext, model: ModelRef) -> ModelSampling:
    """The model's noise levels and prediction type (a ModelSamplingDiscrete patch replaces the checkpoint's)."""
    ckpt = ctx.models.checkpoint(model.checkpoint)
    return model_sampling_for(ckpt.scheduler_config, model.patches)


def prepare_guidance(ctx: NodeContext, model: ModelRef, positive: list[CondEntry], negative: list[CondEntry],
                     cfg: float, *, quantize: bool = True, **dual: Any) -> tuple[Guidance, Checkpoint]:
    """Load the model with its LoRAs and build the guidance its patches ask for (`dual`: DualCFGGuider's)."""
    ckpt = ctx.models.checkpoint(model.checkpoint)
    ctx.models.apply_unet_loras(ckpt, model.loras)
    guidance = Guidance(unet=ckpt.unet, sampling=model_sampling_for(ckpt.scheduler_config, model.patches),
                        positive=positive, negative=negative, cfg=cfg, quantize_timesteps=quantize,
                        controlnet=lambda entry: ctx.models.controlnet(entry.control.control_net),
                        cfg_function=cfg_function_for(model.patches), **dual)
    return guidance, ckpt


def progress(ctx: NodeContext):
    """The sampler's per-step callback: report progress (with the x0 estimate for previews), then honour cancel."""
    def on_step(value: int, maximum: int, latents: torch.Tensor) -> None:
        ctx.report_progress(value, maximum, latents)
        ctx.check_cancel()

    return on_step


def latent_out(latent_image: dict, samples: torch.Tensor) -> dict:
    """A LATENT like the input one, with new samples (float32, on the CPU)."""
    out = dict(latent_image)
    out["samples"] = samples.float().cpu()
    return out


def _out(latent_image: dict, samples: torch.Tensor) -> tuple[Any, ...]:
    return (latent_out(latent_image, samples),)


def _run(ctx: NodeContext, *, model: ModelRef, seed: int, cfg: float, sampler_name: str, scheduler: str,
         positive: list[CondEntry], negative: list[CondEntry], latent_image: dict, plan: StepPlan,
         add_noise: bool = True) -> tuple[Any, ...]:
    """ComfyUI's common_ksampler."""
    guidance, _ = prepare_guidance(ctx, model, positive, negative, cfg)
    latent = latent_image["samples"]
    sigmas = comfy_sigmas(guidance.sampling, sampler_name, scheduler, plan)
    noise = comfy_initial_noise(latent.shape, seed, latent_image.get("batch_index")) if add_noise \
        else torch.zeros(latent.shape)
    ctx.check_cancel()
    with unet_patched(guidance.unet, model.patches):
        result = run_sampler(guidance, sampler_name, sigmas, latent, NoisePlan(noise, seed),
                             noise_mask=latent_image.get("noise_mask"), on_step=progress(ctx))
    return _out(latent_image, result.samples)


def ksampler(ctx: NodeContext, *, model: ModelRef, seed: int, steps: int, cfg: float, sampler_name: str,
             scheduler: str, positive: list[CondEntry], negative: list[CondEntry], latent_image: dict,
             denoise: float) -> tuple[Any, ...]:
    """KSampler: denoise d runs the last `steps` steps of an int(steps / d)-step schedule."""
    return _run(ctx, model=model, seed=seed, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                positive=positive, negative=negative, latent_image=latent_image,
                plan=StepPlan(steps, denoise=denoise))


def ksampler_advanced(ctx: NodeContext, *, model: ModelRef, add_noise: str, noise_seed: int, steps: int,
                      cfg: float, sampler_name: str, scheduler: str, positive: list[CondEntry],
                      negative: list[CondEntry], latent_image: dict, start_at_step: int, end_at_step: int,
                      return_with_leftover_noise: str) -> tuple[Any, ...]:
    """KSamplerAdvanced: run steps [start_at_step, end_at_step) of a `steps`-step schedule."""
    plan = StepPlan(steps, start_step=start_at_step, last_step=end_at_step,
                    force_full_denoise=return_with_leftover_noise != "enable")
    return _run(ctx, model=model, seed=noise_seed, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                positive=positive, negative=negative, latent_image=latent_image, plan=plan,
                add_noise=add_noise == "enable")


def ksampler_a1111(ctx: NodeContext, *, model: ModelRef, seed: int, subseed: int, subseed_strength: float,
                   seed_resize_from_h: int, seed_resize_from_w: int, steps: int, cfg: float, sampler_name: str,
                   scheduler: str, positive: list[CondEntry], negative: list[CondEntry], latent_image: dict,
                   denoise: float, eta: float = 1.0, s_churn: float = 0.0, s_tmin: float = 0.0,
                   s_tmax: float = 0.0, s_noise: float = 1.0, noise_multiplier: float = 1.0,
                   img2img_fix_steps: bool = False) -> tuple[Any, ...]:
    """KSamplerA1111: sample a batch as A1111 does (image i: seed + i; img2img: int(steps × denoise) steps, or
    with `img2img_fix_steps` — A1111's hires pass — `steps` steps of an int(steps / denoise)-step schedule)."""
    guidance, ckpt = prepare_guidance(ctx, model, positive, negative, cfg, quantize=False)
    latent = latent_image["samples"]
    seeds = A1111Seeds.for_batch(seed=seed, batch_size=latent.shape[0], subseed=subseed,
                                 subseed_strength=subseed_strength, resize_from_h=seed_resize_from_h,
                                 resize_from_w=seed_resize_from_w)
    opts = SolverOptions(eta=eta, s_noise=s_noise, s_churn=s_churn, s_tmin=s_tmin,
                         s_tmax=s_tmax if s_tmax > 0 else float("inf"), denoise_last=False)
    plan = A1111Plan(sampler_name, scheduler, steps, seeds, denoise=denoise, opts=opts,
                     model_type="SDXL" if ckpt.family.startswith("sdxl") else "SD1", noise_multiplier=noise_multiplier)
    if img2img_fix_steps:
        plan = fixed_steps(plan)
    ctx.check_cancel()
    with unet_patched(guidance.unet, model.patches):
        samples = sample_a1111(guidance, latent, plan, noise_mask=latent_image.get("noise_mask"),
                               on_step=progress(ctx))
    return _out(latent_image, samples)


def check_sampler_pair(inputs: Any) -> list[tuple[str, str, str]]:
    """Validation: the sampler × scheduler pair must be supported."""
    sampler, scheduler = inputs.get("sampler_name"), inputs.get("scheduler")
    if not isinstance(sampler, str) or not isinstance(scheduler, str):
        return []
    try:
        samplers.check_pair(sampler, scheduler)
    except samplers.UnsupportedSampler as exc:
        return [(exc.field_name, "value_not_in_list", str(exc))]
    return []


def _sampler_inputs() -> tuple:
    return (
        int_input("steps", default=20, min=1, max=10000),
        float_input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01),
        combo_input("sampler_name", samplers.sampler_names()),
        combo_input("scheduler", samplers.scheduler_names()),
        link_input("positive", "CONDITIONING"),
        link_input("negative", "CONDITIONING"),
        link_input("latent_image", "LATENT"),
    )


A1111_SAMPLER_NAMES = tuple(s.engine for s in A1111_SAMPLERS.values())
A1111_SCHEDULER_NAMES = tuple(schedules.A1111)

NODES = [
    NodeDefinition(NodeSpec(
        "KSampler",
        (link_input("model", "MODEL"), int_input("seed", default=0, seed=True), *_sampler_inputs(),
         float_input("denoise", default=1.0, min=0.0, max=1.0, step=0.01)),
        (OutputSpec("LATENT", "LATENT"),), "sampling", "KSampler"), ksampler,
        check=check_sampler_pair),
    NodeDefinition(NodeSpec(
        "KSamplerAdvanced",
        (link_input("model", "MODEL"), combo_input("add_noise", ("enable", "disable")),
         int_input("noise_seed", default=0, seed=True), *_sampler_inputs(),
         int_input("start_at_step", default=0, min=0, max=10000),
         int_input("end_at_step", default=10000, min=0, max=10000),
         combo_input("return_with_leftover_noise", ("disable", "enable"))),
        (OutputSpec("LATENT", "LATENT"),), "sampling", "KSampler (Advanced)"),
        ksampler_advanced, check=check_sampler_pair),
    NodeDefinition(NodeSpec(
        "KSamplerA1111",
        (link_input("model", "MODEL"), int_input("seed", default=0, max=2**32 - 1, seed=True),
         int_input("subseed", default=0, max=2**32 - 1), float_input("subseed_strength", default=0.0, min=0.0,
                                                                     max=1.0),
         int_input("seed_resize_from_h", default=0, min=0, max=16384),
         int_input("seed_resize_from_w", default=0, min=0, max=16384),
         int_input("steps", default=20, min=1, max=10000),
         float_input("cfg", default=7.0, min=0.0, max=100.0, step=0.5, round=0.01),
         combo_input("sampler_name", A1111_SAMPLER_NAMES, default="euler_ancestral"),
         combo_input("scheduler", A1111_SCHEDULER_NAMES, default="uniform"),
         link_input("positive", "CONDITIONING"), link_input("negative", "CONDITIONING"),
         link_input("latent_image", "LATENT"),
         float_input("denoise", default=1.0, min=0.0, max=1.0, step=0.01),
         float_input("eta", default=1.0, min=0.0, max=10.0), float_input("s_churn", default=0.0, min=0.0, max=100.0),
         float_input("s_tmin", default=0.0, min=0.0, max=100.0), float_input("s_tmax", default=0.0, min=0.0,
                                                                            max=1000.0),
         float_input("s_noise", default=1.0, min=0.0, max=10.0),
         replace(float_input("noise_multiplier", default=1.0, min=0.0, max=10.0), optional=True),
         InputSpec("img2img_fix_steps", "BOOLEAN", default=False, optional=True,
                   tooltip="A1111's hires pass and img2img_fix_steps option: exactly `steps` steps")),
        (OutputSpec("LATENT", "LATENT"),), "sampling",
        "KSampler (A1111)", description="Samples a batch as AUTOMATIC1111 does: image i gets seed + i, "
        "variation seeds, A1111's schedules and img2img step count."), ksampler_a1111),
]
