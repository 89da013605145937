"""What a generation form needs from the server: sampler and schedule names, and every field's limits.

Forms check fields early with these (inline, before submitting); the compiler checks them again."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sdfleet.engine.a1111_limits import A1111_LIMITS
from sdfleet.engine.sampler_names import A1111_SAMPLERS, A1111_SCHEDULERS


@dataclass(frozen=True)
class SamplerChoice:
    """An A1111 sampler name, its ComfyUI sampler and the ComfyUI schedule that "Automatic" picks for it."""

    name: str
    comfy: str
    automatic_scheduler: str


@dataclass(frozen=True)
class SchedulerChoice:
    """An A1111 schedule type and the ComfyUI scheduler a job records for it."""

    name: str
    value: str


class GenerationOptions:
    """The choices and limits of A1111-style generation parameters."""

    def __init__(self, *, max_work_per_request: int, max_queued_per_user: int) -> None:
        self._max_work = max_work_per_request
        self._max_queued = max_queued_per_user

    def describe(self) -> dict[str, Any]:
        """Samplers, schedule types, per-field limits and the per-request work limit."""
        return {
            "samplers": [asdict(SamplerChoice(name, s.engine, s.automatic_scheduler)) for name, s in A1111_SAMPLERS.items()],
            "schedulers": [asdict(SchedulerChoice(name, value)) for name, value in A1111_SCHEDULERS.items()],
            "limits": {name: {"min": limit.low, "max": limit.high, "default": limit.default,
                              "multiple_of": limit.multiple_of, "integer": limit.integer}
                       for name, limit in A1111_LIMITS.items()},
            "max_work_per_request": self._max_work,
            "max_queued_per_user": self._max_queued,
        }
