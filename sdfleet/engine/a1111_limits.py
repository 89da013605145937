"""The ranges A1111 payload fields must fall in: one table for the compiler and for forms that check early."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdfleet.engine.a1111_fields import InvalidField


@dataclass(frozen=True)
class FieldLimit:
    """An accepted range; `multiple_of` where values must be a multiple (image sizes)."""

    low: float
    high: float
    default: float
    multiple_of: int | None = None
    integer: bool = True


A1111_LIMITS: dict[str, FieldLimit] = {
    "steps": FieldLimit(1, 10000, 50),  # A1111's API default (StableDiffusionProcessing.steps)
    "cfg_scale": FieldLimit(0.0, 100.0, 7.0, integer=False),
    "width": FieldLimit(64, 16384, 512, multiple_of=8),
    "height": FieldLimit(64, 16384, 512, multiple_of=8),
    "batch_size": FieldLimit(1, 64, 1),
    "n_iter": FieldLimit(1, 100, 1),
    "seed": FieldLimit(-1, 2**32 - 1, -1),
    "denoising_strength": FieldLimit(0.0, 1.0, 0.75, integer=False),
    "mask_blur": FieldLimit(0, 64, 4),
    "subseed": FieldLimit(-1, 2**32 - 1, -1),
    "subseed_strength": FieldLimit(0.0, 1.0, 0.0, integer=False),
    "seed_resize_from_h": FieldLimit(-1, 16384, -1),
    "seed_resize_from_w": FieldLimit(-1, 16384, -1),
    "eta": FieldLimit(0.0, 10.0, 1.0, integer=False),
    "s_churn": FieldLimit(0.0, 100.0, 0.0, integer=False),
    "s_tmin": FieldLimit(0.0, 100.0, 0.0, integer=False),
    "s_tmax": FieldLimit(0.0, 1000.0, 0.0, integer=False),  # 0: no upper limit, as A1111
    "s_noise": FieldLimit(0.0, 10.0, 1.0, integer=False),
    "initial_noise_multiplier": FieldLimit(0.0, 10.0, 1.0, integer=False),
    "hr_scale": FieldLimit(1.0, 8.0, 2.0, integer=False),
    "hr_resize_x": FieldLimit(0, 16384, 0),
    "hr_resize_y": FieldLimit(0, 16384, 0),
    "hr_second_pass_steps": FieldLimit(0, 10000, 0),
}


def read_int(params: Mapping[str, Any], name: str, default: int | None = None, *, low: int | None = None,
             high: int | None = None) -> int:
    """An integer field within A1111_LIMITS (or the given range); None and absent take the default."""
    limit = A1111_LIMITS.get(name)
    if limit is not None:
        default = int(limit.default) if default is None else default
        low = int(limit.low) if low is None else low
        high = int(limit.high) if high is None else high
    value = params.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise InvalidField(name, f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidField(name, f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def read_float(params: Mapping[str, Any], name: str, *, default: float | None = None) -> float:
    """A number field within A1111_LIMITS; None and absent take the default."""
    limit = A1111_LIMITS[name]
    default, low, high = limit.default if default is None else default, limit.low, limit.high
    value = params.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidField(name, f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise InvalidField(name, f"{name} must be between {low} and {high}, got {value}")
    return float(value)
