"""A1111's sampling semantics: per-image seeds, its schedules, its img2img step rule, its DDIM.

What differs from ComfyUI (ksampler.py): the UNet gets interpolated timesteps; the starting noise is
scaled by the first sigma; img2img runs int(steps × strength) steps of the `steps`-step schedule; each
image has its own seed, subseed and noise stream; LMS extrapolates its last step; DDIM is the CompVis
timestep sampler (equivalent to Euler in sigma space, ending at timestep 1 instead of 0).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from sdfleet.engine import noise as noises
from sdfleet.engine import schedules
from sdfleet.engine.denoising import Denoiser, Guidance, InpaintBlend, prepare_mask
from sdfleet.engine.k_solvers import SolverOptions, euler
from sdfleet.engine.ksampler import OnStep
from sdfleet.engine.model_sampling import ModelSampling
from sdfleet.engine.samplers import SAMPLERS


@dataclass(frozen=True)
class A1111Plan:
    """One A1111 batch: sampler (engine name), schedule type (A1111 name), steps, strength and seeds."""

    sampler: str
    scheduler: str
    steps: int
    seeds: noises.A1111Seeds
    denoise: float = 1.0
    opts: SolverOptions = SolverOptions(denoise_last=False)
    model_type: str = "SD1"
    #: img2img's initial_noise_multiplier: scales the starting noise only (A1111's `x *= multiplier`)
    noise_multiplier: float = 1.0
    #: img2img steps run, when fixed (A1111's img2img_fix_steps); None: int(min(denoise, 0.999) × steps)
    t_enc: int | None = None


def a1111_sigmas(ms: ModelSampling, plan: A1111Plan) -> torch.Tensor:
    """A1111's `get_sigmas`: one step more and the penultimate sigma dropped for DPM2 (a) and DPM++ 3M SDE."""
    discard = SAMPLERS[plan.sampler].discard_penultimate or plan.sampler == "dpmpp_3m_sde"
    sigmas = schedules.a1111_sigmas(ms, plan.scheduler, plan.steps + 1 if discard else plan.steps,
                                    model_type=plan.model_type)
    return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas


def encode_steps(plan: A1111Plan) -> int:
    """img2img runs int(min(strength, 0.999) × steps) steps (txt2img: all of them)."""
    if plan.t_enc is not None:
        return plan.t_enc
    return int(min(plan.denoise, 0.999) * plan.steps)


def fixed_steps(plan: A1111Plan) -> A1111Plan:
    """A1111's `setup_img2img_steps` with fixed steps (its hires pass): `steps` steps, the last ones of an
    int(steps / min(strength, 0.999))-step schedule."""
    if plan.denoise <= 0:
        raise ValueError("img2img with fixed steps needs a denoise above 0")
    return replace(plan, steps=int(plan.steps / min(plan.denoise, 0.999)), t_enc=plan.steps - 1)


def sample_a1111(guidance: Guidance, latent: torch.Tensor, plan: A1111Plan, *, noise_mask: torch.Tensor | None,
                 on_step: OnStep) -> torch.Tensor:
    """Sample one A1111 batch (`latent` zeros for txt2img) and return the float32 latent."""
    device = guidance.unet.device
    latent = latent.to(device, torch.float32)
    ms = guidance.sampling
    # k-diffusion as A1111 calls it interpolates timesteps; its CompVis DDIM uses integer ones
    guidance = replace(guidance, quantize_timesteps=plan.sampler == "ddim")
    rng = noises.A1111Noise(tuple(latent.shape[1:]), plan.seeds)
    noise = rng.initial().to(device)
    if plan.noise_multiplier != 1.0:
        noise = noise * plan.noise_multiplier
    inpaint = None
    if noise_mask is not None:
        inpaint = InpaintBlend(latent, prepare_mask(noise_mask, latent.shape).to(device))
    denoiser = Denoiser(guidance, inpaint=inpaint, blend_input=False)
    if plan.sampler == "ddim":
        out = _ddim(denoiser, ms, latent, noise, plan, on_step)
    else:
        out = _k_diffusion(denoiser, latent, noise, rng, plan, on_step, ms)
    if inpaint is not None:
        out = out * inpaint.mask + latent * (1 - inpaint.mask)
    return out


def _k_diffusion(denoiser: Denoiser, latent: torch.Tensor, noise: torch.Tensor, rng: noises.A1111Noise,
                 plan: A1111Plan, on_step: OnStep, ms: ModelSampling) -> torch.Tensor:
    device = latent.device
    spec = SAMPLERS[plan.sampler]
    sigmas = a1111_sigmas(ms, plan)
    t_enc = encode_steps(plan)
    schedule = sigmas[plan.steps - t_enc - 1:].to(device)
    x = latent + noise * schedule[0]
    if plan.sampler in ("dpm_fast", "dpm_adaptive") and not (plan.denoise < 1.0 or latent.any()):
        # A1111's txt2img gives these the model's sigma range whatever the schedule
        schedule = schedule.clone()
        schedule[0], schedule[-2] = ms.sigma_max, ms.sigma_min
    if spec.brownian:
        step_noise = noises.brownian_for(tuple(x.shape), sigmas, list(plan.seeds.seeds))
    else:
        step_noise = rng
    fixed = {k: v for k, v in (spec.options or {}).items() if k != "eta"}
    opts = replace(plan.opts, **fixed)
    total = len(schedule) - 1

    def callback(i: int, x_now: torch.Tensor, denoised: torch.Tensor) -> None:
        on_step(min(i + 1, total), total, denoised)

    def draw(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        return step_noise(sigma, sigma_next).to(device)

    return spec.function(denoiser, x, schedule, noise=draw, callback=callback, opts=opts)


def _ddim(denoiser: Denoiser, ms: ModelSampling, latent: torch.Tensor, noise: torch.Tensor, plan: A1111Plan,
          on_step: OnStep) -> torch.Tensor:
    """A1111's DDIM (eta 0) as Euler on the sigmas of timesteps 1, 1 + 1000//steps, … in sigma space.

    DDIM works on x_vp = √ᾱ·x. A1111 evaluates the model at the timesteps from the top down to the
    second, stepping to the one below, so it ends at timestep 1 (not 0) and returns √ᾱ₁·x.
    """
    timesteps = (torch.arange(0, 1000, 1000 // plan.steps) + 1).clamp(0, 999)
    alphas = ms.alphas_cumprod.float()
    device = latent.device
    if plan.denoise < 1.0 or latent.any():  # img2img (txt2img starts from an empty latent)
        t_enc = encode_steps(plan)
        timesteps = timesteps[:t_enc + 1]
        top = alphas[timesteps[-1]]
        # A1111 noises to timesteps[t_enc] but starts the loop one timestep lower
        x_vp = latent * top.sqrt() + noise * (1 - top).sqrt()
        timesteps = timesteps[:-1]
    else:
        x_vp = noise
    if len(timesteps) < 2:
        return x_vp
    first = alphas[timesteps[-1]]
    x = x_vp / first.sqrt()
    sigmas = ms.sigmas[timesteps.flip(0)].to(device)
    total = len(sigmas) - 1

    def callback(i: int, x_now: torch.Tensor, denoised: torch.Tensor) -> None:
        on_step(i + 1, total, denoised)

    x = euler(denoiser, x, sigmas, noise=lambda a, b: torch.zeros_like(x), callback=callback,
              opts=SolverOptions())
    return x * alphas[timesteps[0]].sqrt()
