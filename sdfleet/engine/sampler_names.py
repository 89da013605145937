"""A1111 sampler and schedule-type names, translated to the engine's at the adapter edge (torch-free).

The engine names samplers as ComfyUI does (`dpmpp_2m`); A1111 labels them ("DPM++ 2M") and names its
schedule types itself ("Karras" → `karras`, "Uniform" → `uniform`). A1111 payloads run on the
KSamplerA1111 node, which takes engine sampler names and A1111 schedule names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class A1111Sampler:
    """An A1111 sampler: the engine's sampler, the schedule "Automatic" picks, and whether it is second order."""

    engine: str
    automatic_scheduler: str = "uniform"
    #: Calls the model twice per step; A1111 counts prompt-editing steps in model calls (steps × 2).
    second_order: bool = False


# A1111 1.10's k-diffusion samplers and its DDIM, in its order.
A1111_SAMPLERS: dict[str, A1111Sampler] = {
    "DPM++ 2M": A1111Sampler("dpmpp_2m", "karras"),
    "DPM++ SDE": A1111Sampler("dpmpp_sde", "karras", second_order=True),
    "DPM++ 2M SDE": A1111Sampler("dpmpp_2m_sde", "exponential"),
    "DPM++ 2M SDE Heun": A1111Sampler("dpmpp_2m_sde_heun", "exponential"),
    "DPM++ 2S a": A1111Sampler("dpmpp_2s_ancestral", "karras", second_order=True),
    "DPM++ 3M SDE": A1111Sampler("dpmpp_3m_sde", "exponential"),
    "Euler a": A1111Sampler("euler_ancestral"),
    "Euler": A1111Sampler("euler"),
    "LMS": A1111Sampler("lms"),
    "Heun": A1111Sampler("heun", second_order=True),
    "DPM2": A1111Sampler("dpm_2", "karras", second_order=True),
    "DPM2 a": A1111Sampler("dpm_2_ancestral", "karras", second_order=True),
    "DPM fast": A1111Sampler("dpm_fast"),
    "DPM adaptive": A1111Sampler("dpm_adaptive"),
    "DDIM": A1111Sampler("ddim"),
}
A1111_ALIASES = {"k_euler_a": "Euler a", "k_euler_ancestral": "Euler a", "k_euler": "Euler", "k_lms": "LMS",
                 "k_heun": "Heun", "k_dpm_2": "DPM2", "k_dpm_2_a": "DPM2 a", "k_dpmpp_2s_a": "DPM++ 2S a",
                 "k_dpmpp_2m": "DPM++ 2M", "k_dpmpp_sde": "DPM++ SDE", "k_dpmpp_2m_sde": "DPM++ 2M SDE",
                 "k_dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun", "k_dpmpp_3m_sde": "DPM++ 3M SDE",
                 "k_dpm_fast": "DPM fast", "k_dpm_ad": "DPM adaptive", "ddim": "DDIM"}
#: A1111 samplers sdfleet does not run (their A1111 implementations have no counterpart here).
A1111_UNSUPPORTED = ("UniPC", "PLMS", "LCM", "Restart", "DDIM CFG++", "DEIS")

#: A1111 schedule types: label → A1111's name (what KSamplerA1111's `scheduler` takes).
A1111_SCHEDULERS: dict[str, str] = {
    "Uniform": "uniform",
    "Karras": "karras",
    "Exponential": "exponential",
    "Polyexponential": "polyexponential",
    "SGM Uniform": "sgm_uniform",
    "KL Optimal": "kl_optimal",
    "Align Your Steps": "align_your_steps",
    "Simple": "simple",
    "Normal": "normal",
    "DDIM": "ddim",
    "Beta": "beta",
}
_BY_NAME = {name: name for name in A1111_SCHEDULERS.values()}
_LOOKUP = {**{k.lower(): v for k, v in A1111_SCHEDULERS.items()}, **_BY_NAME, "sgmuniform": "sgm_uniform"}

#: ComfyUI scheduler → the A1111 label infotext shows for it.
COMFY_SCHEDULE_LABELS = {"normal": "Normal", "karras": "Karras", "exponential": "Exponential",
                         "sgm_uniform": "SGM Uniform", "simple": "Simple", "ddim_uniform": "DDIM", "beta": "Beta",
                         "kl_optimal": "KL Optimal", "linear_quadratic": "Linear Quadratic"}


class UnknownSamplerName(ValueError):
    """An A1111 sampler or scheduler name the engine does not know; names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


def _suffix_split(name: str) -> tuple[str, str]:
    """"DPM++ 2M Karras" → ("DPM++ 2M", "Karras"): A1111's old combined names."""
    for label in sorted(A1111_SCHEDULERS, key=len, reverse=True):
        if name.endswith(" " + label) and name[: -len(label) - 1] in A1111_SAMPLERS:
            return name[: -len(label) - 1], label
    return name, ""


def a1111_sampler(sampler_name: str) -> str:
    """The A1111 label of a sampler name, alias or engine name (raises UnknownSamplerName)."""
    name = A1111_ALIASES.get(sampler_name.strip(), sampler_name.strip())
    name, _ = _suffix_split(name)
    if name in A1111_SAMPLERS:
        return name
    by_engine = {s.engine: label for label, s in A1111_SAMPLERS.items()}
    if name in by_engine:
        return by_engine[name]
    if name in A1111_UNSUPPORTED:
        raise UnknownSamplerName("sampler_name", f"sampler_name {sampler_name!r} is not supported by sdfleet; "
                                 f"supported: {', '.join(A1111_SAMPLERS)}")
    raise UnknownSamplerName("sampler_name", f"sampler_name {sampler_name!r} is unknown; expected one of "
                             f"{', '.join(A1111_SAMPLERS)} (optionally with ' Karras' etc.)")


def resolve(sampler_name: str, scheduler: str | None) -> tuple[str, str]:
    """("DPM++ 2M Karras", None) → ("dpmpp_2m", "karras"): the engine sampler and A1111 schedule name.

    A separate `scheduler` wins over a name suffix; "Automatic" (or none) takes the sampler's own.
    """
    label = a1111_sampler(sampler_name)
    _, suffix = _suffix_split(A1111_ALIASES.get(sampler_name.strip(), sampler_name.strip()))
    sampler = A1111_SAMPLERS[label]
    chosen = (scheduler or "").strip()
    if chosen and chosen.lower() != "automatic":
        mapped = _LOOKUP.get(chosen.lower())
        if not mapped:
            raise UnknownSamplerName("scheduler", f"scheduler {scheduler!r} is unknown; expected Automatic or one "
                                     f"of {', '.join(A1111_SCHEDULERS)}")
        return sampler.engine, mapped
    if suffix:
        return sampler.engine, A1111_SCHEDULERS[suffix]
    return sampler.engine, sampler.automatic_scheduler


def prompt_schedule_steps(sampler: str, steps: int) -> int:
    """The steps A1111's prompt editing counts: one per model evaluation, so twice `steps` for second order."""
    second_order = any(s.second_order for s in A1111_SAMPLERS.values() if s.engine == sampler)
    return steps * 2 if second_order else steps


def a1111_labels(sampler: str, scheduler: str) -> tuple[str, str]:
    """("dpmpp_2m", "karras") of a KSamplerA1111 node → ("DPM++ 2M", "Karras") for its infotext."""
    label = next((k for k, s in A1111_SAMPLERS.items() if s.engine == sampler), sampler)
    schedule = next((k for k, v in A1111_SCHEDULERS.items() if v == scheduler), scheduler)
    if label in A1111_SAMPLERS and A1111_SAMPLERS[label].automatic_scheduler == scheduler:
        schedule = "Automatic"
    return label, schedule


def to_a1111(sampler: str, scheduler: str) -> tuple[str, str]:
    """("dpmpp_2m", "karras") of a ComfyUI KSampler → A1111 labels for infotext."""
    label = next((k for k, s in A1111_SAMPLERS.items() if s.engine == sampler), sampler)
    return label, COMFY_SCHEDULE_LABELS.get(scheduler, scheduler)


class UnsupportedSampler(ValueError):
    """A sampler × scheduler pair the engine cannot run; the message lists what is supported."""

    def __init__(self, message: str, *, field_name: str) -> None:
        super().__init__(message)
        self.field_name = field_name
