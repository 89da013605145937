"""The samplers the engine runs, by ComfyUI name, and the schedulers they pair with.

Every sampler is this project's implementation of the k-diffusion-style function ComfyUI and A1111 call
(k_solvers.py, k_multistep.py, dpm_solver.py), so any sampler works with any schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sdfleet.engine import dpm_solver, k_multistep, k_solvers, schedules
from sdfleet.engine.sampler_names import UnsupportedSampler

__all__ = ["SAMPLERS", "SamplerSpec", "UnsupportedSampler", "check_pair", "sampler_names", "scheduler_names",
           "supported_schedulers"]


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler: its function and how it draws randomness and takes its schedule."""

    function: Callable
    #: Draws per-step noise from a Brownian tree (SDE samplers) rather than a plain generator.
    brownian: bool = False
    #: Draws per-step noise at all (with the default eta); deterministic samplers need no noise source.
    stochastic: bool = False
    #: ComfyUI (and A1111) compute one step more and drop the second-to-last sigma for these.
    discard_penultimate: bool = False
    #: Extra solver options ComfyUI's sampler of this name fixes.
    options: dict | None = None


SAMPLERS: dict[str, SamplerSpec] = {
    "euler": SamplerSpec(k_solvers.euler),
    "euler_ancestral": SamplerSpec(k_solvers.euler_ancestral, stochastic=True),
    "heun": SamplerSpec(k_solvers.heun),
    "dpm_2": SamplerSpec(k_solvers.dpm_2, discard_penultimate=True),
    "dpm_2_ancestral": SamplerSpec(k_solvers.dpm_2_ancestral, stochastic=True, discard_penultimate=True),
    "lms": SamplerSpec(k_multistep.lms),
    # ComfyUI runs these deterministically (eta 0); A1111 passes its eta (1.0) and makes them ancestral.
    "dpm_fast": SamplerSpec(dpm_solver.dpm_fast, options={"eta": 0.0}),
    "dpm_adaptive": SamplerSpec(dpm_solver.dpm_adaptive, options={"eta": 0.0}),
    "dpmpp_2s_ancestral": SamplerSpec(k_solvers.dpmpp_2s_ancestral, stochastic=True),
    "dpmpp_sde": SamplerSpec(k_solvers.dpmpp_sde, stochastic=True, brownian=True),
    "dpmpp_2m": SamplerSpec(k_multistep.dpmpp_2m),
    "dpmpp_2m_sde": SamplerSpec(k_multistep.dpmpp_2m_sde, stochastic=True, brownian=True),
    "dpmpp_2m_sde_heun": SamplerSpec(k_multistep.dpmpp_2m_sde, stochastic=True, brownian=True,
                                     options={"solver_type": "heun"}),
    "dpmpp_3m_sde": SamplerSpec(k_multistep.dpmpp_3m_sde, stochastic=True, brownian=True),
    "ddpm": SamplerSpec(k_solvers.ddpm, stochastic=True),
    "lcm": SamplerSpec(k_solvers.lcm, stochastic=True),
    # ComfyUI's "ddim" is its Euler sampler (differing only in the noise it re-noises inpainted areas with).
    "ddim": SamplerSpec(k_solvers.euler),
}


def solver(name: str) -> Callable:
    """The sampling function of a sampler, with the options its ComfyUI name fixes bound."""
    spec = SAMPLERS[name]
    if not spec.options:
        return spec.function

    def run(model, x, sigmas, *, noise, callback, opts):
        return spec.function(model, x, sigmas, noise=noise, callback=callback, opts=replace(opts, **spec.options))

    return run


def sampler_names() -> list[str]:
    """Sampler names, in ComfyUI's order."""
    return list(SAMPLERS)


def scheduler_names() -> list[str]:
    """Scheduler names, in ComfyUI's order."""
    return list(schedules.COMFY)


def supported_schedulers(sampler: str) -> list[str]:
    """Schedulers usable with `sampler` (all of them, for every known sampler)."""
    return scheduler_names() if sampler in SAMPLERS else []


def check_pair(sampler: str, scheduler: str) -> None:
    """Raise UnsupportedSampler naming the bad field and listing the supported choices."""
    if sampler not in SAMPLERS:
        raise UnsupportedSampler(f"sampler_name {sampler!r} is unknown; supported: {', '.join(sampler_names())}",
                                 field_name="sampler_name")
    if scheduler not in schedules.COMFY:
        raise UnsupportedSampler(
            f"scheduler {scheduler!r} is unknown; supported: {', '.join(scheduler_names())}",
            field_name="scheduler")
