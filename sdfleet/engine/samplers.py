"""ComfyUI sampler and scheduler names mapped onto diffusers schedulers."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import diffusers
from diffusers import SchedulerMixin

from sdfleet.engine.sampler_names import UnsupportedSampler


@dataclass(frozen=True)
class SamplerRecipe:
    """A ComfyUI sampler: the diffusers scheduler class and the config it overrides."""

    class_name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    needs: str | None = None  # an optional package the diffusers class requires


SAMPLERS: dict[str, SamplerRecipe] = {
    "euler": SamplerRecipe("EulerDiscreteScheduler"),
    "euler_ancestral": SamplerRecipe("EulerAncestralDiscreteScheduler"),
    "heun": SamplerRecipe("HeunDiscreteScheduler"),
    "dpm_2": SamplerRecipe("KDPM2DiscreteScheduler"),
    "dpm_2_ancestral": SamplerRecipe("KDPM2AncestralDiscreteScheduler"),
    "lms": SamplerRecipe("LMSDiscreteScheduler", needs="scipy"),
    "dpmpp_sde": SamplerRecipe("DPMSolverSDEScheduler", needs="torchsde"),
    "dpmpp_2m": SamplerRecipe("DPMSolverMultistepScheduler",
                              {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde": SamplerRecipe("DPMSolverMultistepScheduler",
                                  {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp_3m_sde": SamplerRecipe("DPMSolverMultistepScheduler",
                                  {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    "ddim": SamplerRecipe("DDIMScheduler", {"set_alpha_to_one": False, "clip_sample": False}),
    "uni_pc": SamplerRecipe("UniPCMultistepScheduler", {"solver_type": "bh1"}),
    "uni_pc_bh2": SamplerRecipe("UniPCMultistepScheduler", {"solver_type": "bh2"}),
    "deis": SamplerRecipe("DEISMultistepScheduler"),
    "lcm": SamplerRecipe("LCMScheduler"),
}

# Each ComfyUI scheduler: the diffusers config it sets. Its first key is the parameter
# the diffusers class must accept for the pair to be supported.
SCHEDULERS: dict[str, dict[str, Any]] = {
    "normal": {"timestep_spacing": "linspace"},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "sgm_uniform": {"timestep_spacing": "trailing"},
    "simple": {"timestep_spacing": "trailing"},
    "ddim_uniform": {"timestep_spacing": "leading", "steps_offset": 1},
    "beta": {"use_beta_sigmas": True},
}
_SIGMA_KEYS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
_NEEDS_SCIPY = {"beta"}


def _has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _accepts(class_name: str, parameter: str) -> bool:
    cls = getattr(diffusers, class_name)
    return parameter in inspect.signature(cls.__init__).parameters


def _sampler_available(name: str) -> bool:
    recipe = SAMPLERS[name]
    return recipe.needs is None or _has_package(recipe.needs)


def supported_schedulers(sampler: str) -> list[str]:
    """Scheduler names usable with `sampler` in this environment (empty if the sampler is unusable)."""
    if sampler not in SAMPLERS or not _sampler_available(sampler):
        return []
    class_name = SAMPLERS[sampler].class_name
    names = []
    for name, config in SCHEDULERS.items():
        if name in _NEEDS_SCIPY and not _has_package("scipy"):
            continue
        if _accepts(class_name, next(iter(config))):
            names.append(name)
    return names


def sampler_names() -> list[str]:
    """Sampler names usable in this environment, in ComfyUI's order."""
    return [name for name in SAMPLERS if _sampler_available(name)]


def scheduler_names() -> list[str]:
    """All scheduler names the engine knows (support depends on the sampler)."""
    return list(SCHEDULERS)


def check_pair(sampler: str, scheduler: str) -> None:
    """Raise UnsupportedSampler naming the bad field and listing the supported choices."""
    if sampler not in SAMPLERS:
        raise UnsupportedSampler(f"sampler_name {sampler!r} is unknown; supported: {', '.join(sampler_names())}",
                                 field_name="sampler_name")
    if not _sampler_available(sampler):
        raise UnsupportedSampler(
            f"sampler_name {sampler!r} needs the {SAMPLERS[sampler].needs} package, which is not installed; "
            f"supported: {', '.join(sampler_names())}", field_name="sampler_name")
    allowed = supported_schedulers(sampler)
    if scheduler not in allowed:
        raise UnsupportedSampler(
            f"scheduler {scheduler!r} is not supported with sampler {sampler!r}; supported: {', '.join(allowed)}",
            field_name="scheduler")


def scheduler_config(sampler: str, scheduler: str, base_config: Mapping[str, Any]) -> dict[str, Any]:
    """The diffusers config for a sampler × scheduler pair on top of a model's scheduler config."""
    check_pair(sampler, scheduler)
    recipe = SAMPLERS[sampler]
    config = {k: v for k, v in base_config.items() if not k.startswith("_") and k not in _SIGMA_KEYS}
    config.update(recipe.config)
    config.update(SCHEDULERS[scheduler])
    return config


def make_scheduler(sampler: str, scheduler: str, base_config: Mapping[str, Any]) -> SchedulerMixin:
    """A fresh diffusers scheduler for a ComfyUI sampler × scheduler pair and a model's scheduler config."""
    config = scheduler_config(sampler, scheduler, base_config)
    cls = getattr(diffusers, SAMPLERS[sampler].class_name)
    return cls.from_config(config)
