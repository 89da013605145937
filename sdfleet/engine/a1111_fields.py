"""The A1111 request surface: which fields are honoured, which are accepted only at a neutral value, `infotext`.

A1111 clients send every field of `StableDiffusionProcessingTxt2Img` / `Img2Img` with its default. A field
whose feature sdfleet lacks is accepted at the value that means "off" (or where A1111 itself ignores it) and
refused by name otherwise, so a request never silently gives a different image than A1111 would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image

from sdfleet.engine.infotext import parse_infotext


class UnsupportedField(ValueError):
    """A payload field the engine cannot honour; `name` is the field."""

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"{name} is not supported by this engine")
        self.name = name


class InvalidField(ValueError):
    """A payload field with a bad value; `name` is the field."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


#: fields the compiler reads (hires fields are read only with enable_hr, the img2img ones only for img2img)
HONOURED = frozenset({
    "prompt", "negative_prompt", "seed", "sampler_name", "sampler_index", "scheduler", "steps", "cfg_scale",
    "width", "height", "batch_size", "n_iter", "denoising_strength", "init_images", "mask", "mask_blur",
    "inpainting_fill", "inpainting_mask_invert", "override_settings", "subseed", "subseed_strength",
    "seed_resize_from_h", "seed_resize_from_w", "eta", "s_churn", "s_tmin", "s_tmax", "s_noise",
    "disable_extra_networks", "initial_noise_multiplier", "resize_mode", "enable_hr", "hr_scale", "hr_upscaler",
    "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler",
    "hr_prompt", "hr_negative_prompt",
})

#: fields with no effect on the image in A1111 either (saving, echoing, bookkeeping), any value
IGNORED = frozenset({
    "override_settings_restore_afterwards", "send_images", "save_images", "do_not_save_samples",
    "do_not_save_grid", "force_task_id", "infotext", "comments", "include_init_images",
    # A1111 uses image_cfg_scale only with instruct-pix2pix checkpoints, script_args only for script_name
    "image_cfg_scale", "script_args", "firstpass_image", "user", "denoising_strength_hr", "sampler_index_hr",
    "styles_applied",  # the style names the A1111 service applied to the prompts (for `info`)
})


def _values(*allowed: Any) -> Callable[[Any], bool]:
    return lambda value: value in allowed


def _no_refiner(value: Any) -> bool:
    return value in (None, "", "None")


#: fields accepted at the value that means "off": name → test of the value
NEUTRAL: dict[str, Callable[[Any], bool]] = {
    "styles": _values(None, []),  # applied to the prompts by the A1111 service before compiling
    "restore_faces": _values(None, False),
    "tiling": _values(None, False),
    "script_name": _values(None, ""),
    "s_min_uncond": _values(None, 0, 0.0),
    "refiner_checkpoint": _no_refiner,
    "latent_mask": _values(None, ""),
    "firstphase_width": _values(None, 0),
    "firstphase_height": _values(None, 0),
    "mask_round": _values(None, True),
}

#: `override_settings` keys the compiler reads
OVERRIDES = frozenset({"sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "img2img_fix_steps"})
#: `override_settings` keys accepted at A1111's default value (they change nothing then)
OVERRIDE_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "eta_noise_seed_delta": (0,), "samples_format": ("png",), "sd_vae_decode_method": ("Full",),
    "sd_vae_encode_method": ("Full",), "randn_source": ("CPU",), "enable_pnginfo": (True,),
    "s_min_uncond": (0, 0.0), "token_merging_ratio": (0, 0.0),
    "token_merging_ratio_hr": (0, 0.0), "hires_fix_use_firstpass_conds": (False,),
    "upcast_attn": (False,), "use_old_hires_fix_width_height": (False,), "initial_noise_multiplier": (1, 1.0),
    "img2img_extra_noise": (0, 0.0), "always_discard_next_to_last_sigma": (False,),
    "sgm_noise_multiplier": (False,), "sd_checkpoint_hash": None, "sd_model_checkpoint_hash": None,
    "samples_save": None, "grid_save": None, "save_images_before_highres_fix": None,
}


def check_fields(task: str, params: Mapping[str, Any]) -> None:
    """Refuse, by name, any field sdfleet does not know or cannot honour at the value sent."""
    for name, value in params.items():
        if name in HONOURED or name in IGNORED:
            continue
        if name in ("mask_blur_x", "mask_blur_y", "inpaint_full_res", "inpaint_full_res_padding") and task == "img2img":
            continue  # inpainting fields (mask_blur_x/y are read with mask_blur)
        if name == "refiner_switch_at":
            if not _no_refiner(params.get("refiner_checkpoint")) and value is not None and value < 1:
                raise UnsupportedField("refiner_checkpoint", "a refiner (refiner_checkpoint) is not supported; "
                                                             "send refiner_checkpoint null")
            continue
        if name == "alwayson_scripts":
            _check_scripts(value)
            continue
        test = NEUTRAL.get(name)
        if test is None:
            raise UnsupportedField(name, f"{name} is not a supported {task} field")
        if not test(value):
            raise UnsupportedField(name, f"{name}={value!r} is not supported; send it unset, null or at A1111's "
                                         "default (the feature it turns on is not implemented)")
    overrides = params.get("override_settings") or {}
    if not isinstance(overrides, Mapping):
        raise InvalidField("override_settings", "override_settings must be an object")
    for key, value in overrides.items():
        if key in OVERRIDES:
            continue
        if key in OVERRIDE_DEFAULTS:
            allowed = OVERRIDE_DEFAULTS[key]
            if allowed is None or value in allowed:
                continue
            raise UnsupportedField(f"override_settings.{key}", f"override_settings.{key}={value!r} is not "
                                                               f"supported; accepted: {list(allowed)}")
        raise UnsupportedField(f"override_settings.{key}",
                               f"override_settings.{key} is not supported; supported: {sorted(OVERRIDES)} "
                               "(and A1111's defaults of a few others)")


def _check_scripts(scripts: Any) -> None:
    """An always-on script with no arguments does nothing; ControlNet is compiled; any other is refused."""
    if scripts is None:
        return
    if not isinstance(scripts, Mapping):
        raise InvalidField("alwayson_scripts", "alwayson_scripts must be an object of script name → {args: [...]}")
    for name, entry in scripts.items():
        if str(name).lower() == "controlnet":
            continue  # read by engine/a1111_controlnet.py
        args = entry.get("args") if isinstance(entry, Mapping) else entry
        if args in (None, [], ()):
            continue
        raise UnsupportedField("alwayson_scripts", f"alwayson_scripts {name!r} is not supported: sdfleet runs no "
                                                   "A1111 scripts or extensions")


def only_masked(params: Mapping[str, Any]) -> bool:
    """A1111's inpaint_full_res ("Inpaint area: Only masked"), true unless sent false (A1111's API default)."""
    value = params.get("inpaint_full_res", True)
    return value is None or bool(value)


def binary_mask(mask: Image.Image) -> Image.Image:
    """An A1111 request's mask as A1111 reads it (`create_binary_mask`, mask_round on): the alpha channel of an
    RGBA image that has transparency, thresholded at > 128; any other image's luminance ("L") as it is."""
    if mask.mode == "RGBA" and mask.getchannel("A").getextrema() != (255, 255):
        return mask.getchannel("A").point(lambda x: 255 if x > 128 else 0)
    return mask.convert("L")


def mask_is_blank(mask: Image.Image, *, inverted: bool) -> bool:
    """Whether a binary mask (inverted when `inverted`) masks nothing: A1111 then gives up "Only masked" and runs
    img2img on the whole picture."""
    low, high = mask.convert("L").getextrema()
    return low == high == (255 if inverted else 0)


def mask_blur(params: Mapping[str, Any]) -> Any:
    """A1111's mask blur: `mask_blur` if sent, else mask_blur_x/y (equal: one blur radius)."""
    if params.get("mask_blur") is not None:
        return params["mask_blur"]
    x, y = params.get("mask_blur_x"), params.get("mask_blur_y")
    if x is None and y is None:
        return None
    if x is not None and y is not None and x != y:
        raise UnsupportedField("mask_blur_x", f"different horizontal and vertical mask blur ({x} and {y}) is not "
                                              "supported; send mask_blur")
    return x if x is not None else y


# infotext key → A1111 payload field, as A1111's paste fields map them (values parsed by the compiler)
_INFOTEXT_FIELDS = {
    "Steps": "steps", "Sampler": "sampler_name", "Schedule type": "scheduler", "CFG scale": "cfg_scale",
    "Seed": "seed", "Size-1": "width", "Size-2": "height", "Variation seed": "subseed",
    "Variation seed strength": "subseed_strength", "Seed resize from-1": "seed_resize_from_w",
    "Seed resize from-2": "seed_resize_from_h", "Denoising strength": "denoising_strength",
    "Hires upscale": "hr_scale", "Hires steps": "hr_second_pass_steps", "Hires upscaler": "hr_upscaler",
    "Hires resize-1": "hr_resize_x", "Hires resize-2": "hr_resize_y", "Hires sampler": "hr_sampler_name",
    "Hires schedule type": "hr_scheduler", "Hires prompt": "hr_prompt", "Hires negative prompt": "hr_negative_prompt",
    "Hires checkpoint": "hr_checkpoint_name", "Mask blur": "mask_blur", "Eta": "eta",
}
_INT_FIELDS = {"steps", "seed", "width", "height", "subseed", "seed_resize_from_w", "seed_resize_from_h",
               "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "mask_blur"}
_FLOAT_FIELDS = {"cfg_scale", "subseed_strength", "denoising_strength", "hr_scale", "eta"}


def apply_infotext(task: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A1111's `infotext` field: values it carries fill the fields the request leaves unset."""
    text = params.get("infotext")
    out = dict(params)
    if not text:
        return out
    if not isinstance(text, str):
        raise InvalidField("infotext", "infotext must be a string")
    parsed = parse_infotext(text)
    values: dict[str, Any] = {"prompt": parsed.prompt, "negative_prompt": parsed.negative_prompt}
    found = dict(parsed.params)
    for key in ("Size", "Seed resize from", "Hires resize"):
        first, sep, second = str(found.get(key, "")).partition("x")
        if sep:
            found[f"{key}-1"], found[f"{key}-2"] = first, second
    for key, name in _INFOTEXT_FIELDS.items():
        if key not in found:
            continue
        raw = str(found[key]).strip()
        try:
            values[name] = int(raw) if name in _INT_FIELDS else float(raw) if name in _FLOAT_FIELDS else raw
        except ValueError:
            raise InvalidField("infotext", f"infotext: {key} {raw[:50]!r} is not a number") from None
    if task == "txt2img" and "Denoising strength" in found and (
            {"Hires upscale", "Hires upscaler", "Hires resize-1"} & set(found)):
        values["enable_hr"] = True
    if "Clip skip" in found:
        overrides = dict(out.get("override_settings") or {})
        overrides.setdefault("CLIP_stop_at_last_layers", int(found["Clip skip"]))
        out["override_settings"] = overrides
    for name, value in values.items():
        if out.get(name) is None and name not in params:
            out[name] = value
    return out
