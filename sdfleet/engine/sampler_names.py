"""A1111 sampler and schedule-type names, translated to ComfyUI's at the adapter edge."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class A1111Sampler:
    """An A1111 sampler: its ComfyUI sampler name and the schedule "Automatic" picks for it."""

    comfy: str
    automatic_scheduler: str = "normal"
    #: two model evaluations per step: A1111 counts prompt-editing steps twice for these
    second_order: bool = False


A1111_SAMPLERS: dict[str, A1111Sampler] = {
    "DPM++ 2M": A1111Sampler("dpmpp_2m", "karras"),
    "DPM++ SDE": A1111Sampler("dpmpp_sde", "karras", second_order=True),
    "DPM++ 2M SDE": A1111Sampler("dpmpp_2m_sde", "exponential"),
    "DPM++ 3M SDE": A1111Sampler("dpmpp_3m_sde", "exponential"),
    "Euler a": A1111Sampler("euler_ancestral"),
    "Euler": A1111Sampler("euler"),
    "LMS": A1111Sampler("lms"),
    "Heun": A1111Sampler("heun", second_order=True),
    "DPM2": A1111Sampler("dpm_2", "karras", second_order=True),
    "DPM2 a": A1111Sampler("dpm_2_ancestral", "karras", second_order=True),
    "DDIM": A1111Sampler("ddim", "ddim_uniform"),
    "UniPC": A1111Sampler("uni_pc"),
    "LCM": A1111Sampler("lcm", "sgm_uniform"),
    "DEIS": A1111Sampler("deis"),
}
A1111_ALIASES = {"k_euler_a": "Euler a", "k_euler": "Euler", "k_lms": "LMS", "k_heun": "Heun",
                 "k_dpm_2": "DPM2", "k_dpm_2_a": "DPM2 a", "k_dpmpp_2m": "DPM++ 2M", "k_dpmpp_sde": "DPM++ SDE",
                 "k_dpmpp_2m_sde": "DPM++ 2M SDE"}

A1111_SCHEDULERS: dict[str, str] = {
    "Uniform": "normal",
    "Normal": "normal",
    "Karras": "karras",
    "Exponential": "exponential",
    "SGM Uniform": "sgm_uniform",
    "Simple": "simple",
    "DDIM": "ddim_uniform",
    "Beta": "beta",
}
_LOWER_SCHEDULERS = {k.lower(): v for k, v in A1111_SCHEDULERS.items()} | {
    "automatic": "", "sgm_uniform": "sgm_uniform", "ddim_uniform": "ddim_uniform"}


class UnknownSamplerName(ValueError):
    """An A1111 sampler or scheduler name the engine does not know; names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


def to_comfy(sampler_name: str, scheduler: str | None) -> tuple[str, str]:
    """("DPM++ 2M Karras", None) → ("dpmpp_2m", "karras"); a separate `scheduler` wins over a name suffix."""
    name = A1111_ALIASES.get(sampler_name, sampler_name).strip()
    suffix = ""
    if name not in A1111_SAMPLERS:
        for candidate in ("Karras", "Exponential", "SGM Uniform", "Uniform", "Simple", "Beta"):
            if name.endswith(" " + candidate) and name[: -len(candidate) - 1] in A1111_SAMPLERS:
                name, suffix = name[: -len(candidate) - 1], candidate
                break
    if name not in A1111_SAMPLERS:
        comfy_names = {s.comfy: k for k, s in A1111_SAMPLERS.items()}
        if name in comfy_names:
            name = comfy_names[name]
        else:
            raise UnknownSamplerName("sampler_name", f"sampler_name {sampler_name!r} is unknown; expected one of "
                                     f"{', '.join(A1111_SAMPLERS)} (optionally with ' Karras' etc.)")
    sampler = A1111_SAMPLERS[name]
    chosen = (scheduler or "").strip()
    if chosen and chosen.lower() != "automatic":
        mapped = _LOWER_SCHEDULERS.get(chosen.lower())
        if not mapped:
            raise UnknownSamplerName("scheduler", f"scheduler {scheduler!r} is unknown; expected Automatic or one "
                                     f"of {', '.join(A1111_SCHEDULERS)}")
        return sampler.comfy, mapped
    if suffix:
        return sampler.comfy, A1111_SCHEDULERS[suffix]
    return sampler.comfy, sampler.automatic_scheduler


def prompt_schedule_steps(comfy_sampler: str, steps: int) -> int:
    """The steps A1111's prompt editing counts: one per model evaluation, so twice `steps` for second order."""
    second_order = any(s.second_order for s in A1111_SAMPLERS.values() if s.comfy == comfy_sampler)
    return steps * 2 if second_order else steps


def to_a1111(sampler: str, scheduler: str) -> tuple[str, str]:
    """("dpmpp_2m", "karras") → ("DPM++ 2M", "Karras") for infotext."""
    name = next((k for k, s in A1111_SAMPLERS.items() if s.comfy == sampler), sampler)
    schedule = next((k for k, v in A1111_SCHEDULERS.items() if v == scheduler), scheduler)
    if name in A1111_SAMPLERS and A1111_SAMPLERS[name].automatic_scheduler == scheduler:
        schedule = "Automatic"
    return name, schedule


class UnsupportedSampler(ValueError):
    """A sampler × scheduler pair the engine cannot run; the message lists what is supported."""

    def __init__(self, message: str, *, field_name: str) -> None:
        super().__init__(message)
        self.field_name = field_name
