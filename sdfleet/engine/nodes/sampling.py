"""Sampler nodes: KSampler and KSamplerAdvanced."""

from __future__ import annotations

from typing import Any

from sdfleet.engine import samplers
from sdfleet.engine.denoising import SamplingJob, StepRange, sample
from sdfleet.engine.model_loader import ModelRef
from sdfleet.engine.node_registry import (
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


def _run(ctx: NodeContext, *, model: ModelRef, seed: int, cfg: float, sampler_name: str, scheduler: str,
         positive: list[CondEntry], negative: list[CondEntry], latent_image: dict, steps: StepRange,
         add_noise: bool = True, force_full_denoise: bool = False) -> dict:
    ckpt = ctx.models.checkpoint(model.checkpoint)
    ctx.models.apply_unet_loras(ckpt, model.loras)
    job = SamplingJob(
        unet=ckpt.unet,
        scheduler=samplers.make_scheduler(sampler_name, scheduler, ckpt.scheduler_config),
        latent=latent_image["samples"],
        positive=positive,
        negative=negative,
        cfg=cfg,
        seed=seed,
        steps=steps,
        add_noise=add_noise,
        noise_mask=latent_image.get("noise_mask"),
        force_full_denoise=force_full_denoise,
        controlnet=lambda entry: ctx.models.controlnet(entry.control.control_net),
    )

    def on_step(value: int, maximum: int, latents: Any) -> None:
        ctx.report_progress(value, maximum, latents)
        ctx.check_cancel()

    ctx.check_cancel()
    samples = sample(job, on_step=on_step)
    out = dict(latent_image)
    out["samples"] = samples.float().cpu()
    return out


def ksampler(ctx: NodeContext, *, model: ModelRef, seed: int, steps: int, cfg: float, sampler_name: str,
             scheduler: str, positive: list[CondEntry], negative: list[CondEntry], latent_image: dict,
             denoise: float) -> tuple[Any, ...]:
    """KSampler."""
    return (_run(ctx, model=model, seed=seed, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                 positive=positive, negative=negative, latent_image=latent_image,
                 steps=StepRange.from_denoise(steps, denoise)),)


def ksampler_advanced(ctx: NodeContext, *, model: ModelRef, add_noise: str, noise_seed: int, steps: int,
                      cfg: float, sampler_name: str, scheduler: str, positive: list[CondEntry],
                      negative: list[CondEntry], latent_image: dict, start_at_step: int, end_at_step: int,
                      return_with_leftover_noise: str) -> tuple[Any, ...]:
    """KSamplerAdvanced: run steps [start_at_step, end_at_step) of a `steps`-step schedule."""
    start = min(start_at_step, steps)
    end = max(start, min(end_at_step, steps))
    return (_run(ctx, model=model, seed=noise_seed, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                 positive=positive, negative=negative, latent_image=latent_image,
                 steps=StepRange(steps, start, end), add_noise=add_noise == "enable",
                 force_full_denoise=return_with_leftover_noise != "enable"),)


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
]
