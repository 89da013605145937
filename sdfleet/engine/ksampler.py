"""ComfyUI's KSampler semantics: sigmas for steps / denoise / start-end steps, initial noise, per-step noise.

`comfy_sigmas` is `comfy.samplers.KSampler` (schedule, penultimate-sigma discard, denoise, KSamplerAdvanced's
start/end steps); `run_sampler` is `comfy.samplers.KSAMPLER.sample` (noise scaling, inpainting blend, the
noise the sampler draws) around any sigma list, which SamplerCustom shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from sdfleet.engine import noise as noises
from sdfleet.engine import schedules
from sdfleet.engine.denoising import Denoiser, Guidance, InpaintBlend, prepare_mask
from sdfleet.engine.k_solvers import SolverOptions
from sdfleet.engine.model_sampling import ModelSampling
from sdfleet.engine.samplers import SAMPLERS, solver

#: on_step(value, maximum, x0 estimate) after each sampler step.
OnStep = Callable[[int, int, torch.Tensor], None]


@dataclass(frozen=True)
class StepPlan:
    """Which part of which schedule a KSampler node runs."""

    steps: int
    denoise: float = 1.0
    start_step: int | None = None
    last_step: int | None = None
    force_full_denoise: bool = False


def comfy_sigmas(ms: ModelSampling, sampler: str, scheduler: str, plan: StepPlan) -> torch.Tensor:
    """The sigmas a KSampler / KSamplerAdvanced node samples through (empty: nothing to do)."""
    discard = SAMPLERS[sampler].discard_penultimate

    def schedule(steps: int) -> torch.Tensor:
        sigmas = schedules.comfy_sigmas(ms, scheduler, steps + 1 if discard else steps)
        return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas

    # 1. KSampler.set_steps: denoise d samples the last `steps` sigmas of an int(steps / d)-step schedule
    if plan.denoise > 0.9999:
        sigmas = schedule(plan.steps)
    elif plan.denoise <= 0.0:
        return torch.zeros(0)
    else:
        sigmas = schedule(int(plan.steps / plan.denoise))[-(plan.steps + 1):]

    # 2. KSampler.sample: KSamplerAdvanced's step range
    if plan.last_step is not None and plan.last_step < len(sigmas) - 1:
        sigmas = sigmas[: plan.last_step + 1].clone()
        if plan.force_full_denoise:
            sigmas[-1] = 0
    if plan.start_step is not None:
        if plan.start_step >= len(sigmas) - 1:
            return torch.zeros(0)
        sigmas = sigmas[plan.start_step:]
    return sigmas


@dataclass(frozen=True)
class NoisePlan:
    """Where the sampler's randomness comes from: the initial noise and ComfyUI's one seed."""

    noise: torch.Tensor  # unscaled standard normal noise (zeros when a KSamplerAdvanced disables it)
    seed: int


@dataclass(frozen=True)
class Sampled:
    """A sampler's result and its last x0 estimate (SamplerCustom's `denoised_output`; None: no step ran)."""

    samples: torch.Tensor
    denoised: torch.Tensor | None


def run_sampler(guidance: Guidance, sampler: str, sigmas: torch.Tensor, latent: torch.Tensor, plan: NoisePlan, *,
                noise_mask: torch.Tensor | None, on_step: OnStep, opts: SolverOptions = SolverOptions()) -> Sampled:
    """Sample `latent` through `sigmas` as ComfyUI's KSAMPLER does (float32 results)."""
    if len(sigmas) <= 1:
        return Sampled(latent, None)
    device = guidance.unet.device
    latent = latent.to(device, torch.float32)
    sigmas = sigmas.to(device, torch.float32)
    noise = plan.noise.to(device, torch.float32)
    ms = guidance.sampling
    spec = SAMPLERS[sampler]

    # 1. The starting point: noise scaled to the first sigma (√(1+σ²) from the top), plus the latent
    first = float(sigmas[0])
    scale = (1.0 + first ** 2) ** 0.5 if ms.is_max_denoise(first) else first
    x = noise * scale + latent

    # 2. Per-step noise: a Brownian tree for SDE samplers, else a CPU generator seeded seed + 1
    shape = tuple(x.shape)
    if spec.brownian:
        step_noise = noises.brownian_for(shape, sigmas.cpu(), plan.seed)
    else:
        step_noise = noises.GeneratorNoise(shape, plan.seed + 1)

    # 3. Inpainting: keep the unmasked latent (ComfyUI's "ddim" re-noises it with fresh noise of seed + 1)
    inpaint = None
    if noise_mask is not None:
        blend_noise = noise
        if sampler == "ddim":
            blend_noise = noises.comfy_initial_noise(shape, plan.seed + 1).to(device)
        inpaint = InpaintBlend(latent, prepare_mask(noise_mask, x.shape).to(device), blend_noise)

    # 4. Sample
    denoiser = Denoiser(guidance, inpaint=inpaint)
    total = len(sigmas) - 1

    last: list[torch.Tensor] = []

    def callback(i: int, x_now: torch.Tensor, denoised: torch.Tensor) -> None:
        last[:] = [denoised]
        on_step(min(i + 1, total), total, denoised)

    samples = solver(sampler)(denoiser, x, sigmas, noise=_on(step_noise, device), callback=callback,
                              opts=replace(opts))
    return Sampled(samples, last[0] if last else None)


def _on(source: Callable, device: torch.device) -> Callable:
    if device.type == "cpu":
        return source
    return lambda sigma, sigma_next: source(sigma, sigma_next).to(device)
