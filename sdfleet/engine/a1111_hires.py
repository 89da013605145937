"""A1111's hires fix (`enable_hr`): the second pass's size, upscaler, steps, sampler, prompts and infotext.

As A1111's `StableDiffusionProcessingTxt2Img`: the first pass at width × height, an upscale (a latent mode, or
in pixels with an upscaler) to `hr_scale` × size or `hr_resize_x/y` (cropping the latent when both are given
and the aspect differs), then img2img with `hr_second_pass_steps` (or `steps`) steps exactly, at
`denoising_strength`, with the same seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdfleet.engine.a1111_fields import InvalidField, UnsupportedField
from sdfleet.engine.a1111_limits import A1111_LIMITS, read_float, read_int
from sdfleet.engine.sampler_names import UnknownSamplerName, a1111_labels, resolve

#: A1111's latent upscale modes (`shared.latent_upscale_modes`): name → (torch mode, antialias)
LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
#: A1111's built-in pixel upscalers ("None" is a plain Lanczos resize)
PIXEL_UPSCALERS = ("None", "Lanczos", "Nearest")

#: values A1111's UI sends for "the first pass's"
_SAME = (None, "", "Use same sampler", "Use same scheduler", "Use same checkpoint")


@dataclass(frozen=True)
class HiresPlan:
    """Everything the compiler needs for the second pass of every iteration."""

    upscaler: str  #: a LATENT_MODES name, "None"/"Lanczos"/"Nearest", or an upscaler model's file name
    width: int  #: the upscale target (before the crop)
    height: int
    crop_x: int  #: latent columns / rows A1111 truncates (hr_resize_x and _y with another aspect)
    crop_y: int
    steps: int
    denoise: float
    sampler: str  #: engine names
    scheduler: str
    prompt: str  #: as sent (LoRA tags included)
    negative_prompt: str
    checkpoint: str | None  #: None: the first pass's
    infotext: dict[str, Any] = field(default_factory=dict)

    @property
    def latent(self) -> bool:
        """True when the upscale happens in latent space."""
        return self.upscaler in LATENT_MODES


def target_size(params: Mapping[str, Any], width: int, height: int) -> tuple[int, int, int, int, dict]:
    """A1111's `calculate_target_resolution`: (upscale width, height, truncate x, y, infotext)."""
    resize_x, resize_y = read_int(params, "hr_resize_x"), read_int(params, "hr_resize_y")
    truncate_x = truncate_y = 0
    if resize_x == 0 and resize_y == 0:
        scale = read_float(params, "hr_scale")
        info: dict[str, Any] = {"Hires upscale": f"{scale:g}"}
        to_x, to_y = int(width * scale), int(height * scale)
    else:
        info = {"Hires resize": f"{resize_x}x{resize_y}"}
        if resize_y == 0:
            to_x, to_y = resize_x, resize_x * height // width
        elif resize_x == 0:
            to_x, to_y = resize_y * width // height, resize_y
        else:
            if width / height < resize_x / resize_y:
                to_x, to_y = resize_x, resize_x * height // width
            else:
                to_x, to_y = resize_y * width // height, resize_y
            truncate_x, truncate_y = (to_x - resize_x) // 8, (to_y - resize_y) // 8
    limit = A1111_LIMITS["width"]
    for name, value in (("width", to_x), ("height", to_y)):
        if not limit.low <= value <= limit.high:
            field_name = "hr_scale" if "Hires upscale" in info else "hr_resize_x"
            raise InvalidField(field_name, f"the hires {name} would be {value}; it must be between "
                                           f"{int(limit.low)} and {int(limit.high)}")
    return to_x, to_y, truncate_x, truncate_y, info


def plan_hires(params: Mapping[str, Any], *, width: int, height: int, steps: int, sampler_label: str,
               sampler: str, scheduler: str, upscaler_models: list[str] | None) -> HiresPlan:
    """Read and check the hires fields of a txt2img payload with `enable_hr`."""
    if params.get("firstpass_image"):
        raise UnsupportedField("firstpass_image", "firstpass_image (a given first pass) is not supported")
    denoise = read_float(params, "denoising_strength")
    if denoise <= 0:
        raise InvalidField("denoising_strength", "denoising_strength must be above 0 with enable_hr")
    to_x, to_y, crop_x, crop_y, sizes = target_size(params, width, height)
    upscaler = params.get("hr_upscaler")
    name = "Latent" if upscaler is None else str(upscaler)
    if name not in LATENT_MODES and name not in PIXEL_UPSCALERS:
        models = upscaler_models or []
        match = next((m for m in models if m == name or m.rsplit(".", 1)[0] == name), None)
        if match is None:
            known = [*LATENT_MODES, *PIXEL_UPSCALERS, *(m.rsplit(".", 1)[0] for m in models)]
            raise InvalidField("hr_upscaler", f"hr_upscaler {name[:100]!r} is unknown; available: {', '.join(known)}")
        name = match
    hr_steps = read_int(params, "hr_second_pass_steps") or steps
    hr_label = params.get("hr_sampler_name")
    hr_label = sampler_label if hr_label in _SAME else str(hr_label)
    hr_schedule = params.get("hr_scheduler")
    if hr_schedule in _SAME:
        hr_schedule = params.get("scheduler")
    try:
        hr_sampler, hr_scheduler = resolve(hr_label, hr_schedule)
    except UnknownSamplerName as exc:
        raise InvalidField("hr_sampler_name" if exc.field_name == "sampler_name" else "hr_scheduler",
                           str(exc).replace(exc.field_name, "hr_" + exc.field_name, 1)) from None
    checkpoint = params.get("hr_checkpoint_name")
    checkpoint = None if checkpoint in _SAME else str(checkpoint)
    prompt, negative = str(params.get("prompt") or ""), str(params.get("negative_prompt") or "")
    hr_prompt = str(params.get("hr_prompt") or "") or prompt
    hr_negative = str(params.get("hr_negative_prompt") or "") or negative
    # the keys A1111 adds to the infotext, in its order
    info: dict[str, Any] = {"Denoising strength": f"{denoise:g}"}
    if checkpoint is not None:
        info["Hires checkpoint"] = checkpoint.rsplit(".", 1)[0]
    if params.get("hr_sampler_name") not in _SAME and hr_label != sampler_label:
        info["Hires sampler"] = hr_label
    if hr_prompt != prompt:
        info["Hires prompt"] = hr_prompt
    if hr_negative != negative:
        info["Hires negative prompt"] = hr_negative
    first_schedule = a1111_labels(sampler, scheduler)[1]
    hr_schedule_label = a1111_labels(hr_sampler, hr_scheduler)[1]
    if hr_schedule_label != first_schedule:
        info["Hires schedule type"] = hr_schedule_label
    info.update(sizes)
    if read_int(params, "hr_second_pass_steps"):
        info["Hires steps"] = hr_steps
    if upscaler is not None:
        info["Hires upscaler"] = str(upscaler)
    return HiresPlan(upscaler=name, width=to_x, height=to_y, crop_x=crop_x, crop_y=crop_y, steps=hr_steps,
                     denoise=denoise, sampler=hr_sampler, scheduler=hr_scheduler, prompt=hr_prompt,
                     negative_prompt=hr_negative, checkpoint=checkpoint, infotext=info)
