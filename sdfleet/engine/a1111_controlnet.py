"""A1111's ControlNet extension (`alwayson_scripts.controlnet.args`) compiled to ControlNet nodes.

Units are read as sd-webui-controlnet's API takes them (`to_processing_unit`: `input_image` for `image`,
`guidance` for `guidance_end`, `lowvram` for `low_vram`). Only the `none` preprocessor exists here: the
control image is used as sent. A unit option whose feature is missing is refused by its full field name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sdfleet.engine.a1111_fields import InvalidField, UnsupportedField

SCRIPT = "controlnet"
#: the preprocessors (`module`) this server runs; "none" uses the control image as it is
MODULES = ("none",)
_ALIASES = {"input_image": "image", "guidance": "guidance_end", "lowvram": "low_vram", "guessmode": "guess_mode"}
_CONTROL_MODES = {0: "Balanced", 1: "My prompt is more important", 2: "ControlNet is more important"}
_RESIZE_MODES = {0: "Just Resize", 1: "Crop and Resize", 2: "Resize and Fill", 3: "Just Resize"}
#: the extension's `HiResFixOption`: which passes of a hires-fix job a unit controls
_HR_OPTIONS = {0: "Both", 1: "Low res only", 2: "High res only"}
FIRST_PASS, HIRES_PASS = "Low res only", "High res only"
_RESIZE_ALIASES = {"Inner Fit (Scale to Fit)": "Crop and Resize", "Scale to Fit (Inner Fit)": "Crop and Resize",
                   "Outer Fit (Shrink to Fit)": "Resize and Fill", "Envelope (Outer Fit)": "Resize and Fill"}
_HASH = re.compile(r"\s*\[[0-9a-fA-F]+\]\s*$")


def _any(value: Any) -> bool:
    return True


def _off(value: Any) -> bool:
    return value in (None, False, "", [], {})


#: unit fields with no effect when the preprocessor is `none` (memory, preview, UI state), any value
_IGNORED = {"low_vram", "processor_res", "threshold_a", "threshold_b", "pixel_perfect", "save_detected_map",
            "is_ui", "inpaint_crop_input_image", "enabled", "module", "model", "weight", "image",
            "guidance_start", "guidance_end", "control_mode", "resize_mode", "hr_option"}
#: unit fields accepted only at the value that turns their feature off
_NEUTRAL: dict[str, Callable[[Any], bool]] = {
    "mask": _off, "mask_image": _off, "guess_mode": _off, "loopback": _off, "batch_images": _off,
    "output_dir": _off, "effective_region_mask": _off, "ipadapter_input": _off, "advanced_weighting": _off,
    "animatediff_batch": _off, "batch_modifiers": _off, "batch_image_dir": _off, "batch_mask_dir": _off,
    "batch_input_gallery": _off, "batch_mask_gallery": _off, "generated_image": _off,
    "input_mode": lambda v: v in (None, "simple", "Single Image"),
    "union_control_type": lambda v: v in (None, "", "Unknown"),
    "mask_image_mode": _any, "use_preview_as_input": _off,
}


@dataclass(frozen=True)
class ControlUnit:
    """One enabled unit, validated: the registry file, the input image's name, and its settings."""

    index: int
    model: str
    image: str
    weight: float
    start: float
    end: float
    resize_mode: str  # "Just Resize", "Crop and Resize" (the extension's default), "Resize and Fill"
    control_mode: str = "Balanced"
    hr_option: str = "Both"

    def controls(self, *, hires_pass: bool) -> bool:
        """Whether the unit acts in this pass (a job without hires fix has only the low-res pass)."""
        return self.hr_option != (FIRST_PASS if hires_pass else HIRES_PASS)


def _args(params: Mapping[str, Any]) -> list[Any]:
    scripts = params.get("alwayson_scripts") or {}
    if not isinstance(scripts, Mapping):
        return []
    entry = next((v for k, v in scripts.items() if str(k).lower() == SCRIPT), None)
    args = entry.get("args") if isinstance(entry, Mapping) else entry
    if args in (None, (), []):
        return []
    if not isinstance(args, list):
        raise InvalidField("alwayson_scripts.controlnet.args", "alwayson_scripts.controlnet.args must be a list "
                                                               "of ControlNet units (objects)")
    return args


def _unit(raw: Any, index: int) -> dict[str, Any] | None:
    """The unit with the extension's aliases applied, or None when it is disabled or empty."""
    name = f"alwayson_scripts.controlnet.args[{index}]"
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidField(name, f"{name} must be an object (a ControlNet unit), got {type(raw).__name__}")
    unit: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(key, key)
        if name not in unit or not _off(value):  # `image: null` beside `input_image: <b64>` keeps the image
            unit[name] = value
    return unit if unit.get("enabled", True) else None


def unit_images(params: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
    """(unit index, field name, base64 value) of each enabled unit's control image, for the server to store."""
    found = []
    for i, raw in enumerate(_args(params)):
        unit = _unit(raw, i)
        if unit is None:
            continue
        image = unit.get("image")
        source = "image" if not _off(raw.get("image")) or "input_image" not in raw else "input_image"
        field = f"alwayson_scripts.controlnet.args[{i}].{source}"
        if isinstance(image, Mapping):  # the extension's {"image": b64, "mask": b64 | None}
            if not _off(image.get("mask")):
                raise UnsupportedField(f"{field}.mask", f"{field}.mask is not supported (no ControlNet masks)")
            image, field = image.get("image"), f"{field}.image"
        if image:
            found.append((i, field, image))
    return found


def _float(unit: Mapping[str, Any], key: str, default: float, prefix: str) -> float:
    value = unit.get(key)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidField(f"{prefix}.{key}", f"{prefix}.{key} must be a number, got {value!r}") from None


def _mode(value: Any, table: dict[int, str], aliases: Mapping[str, str], field: str) -> str:
    if isinstance(value, bool) or value is None:
        raise InvalidField(field, f"{field} must be one of {sorted(table)} or {sorted(set(table.values()))}")
    if isinstance(value, int) and value in table:
        return table[value]
    name = aliases.get(str(value), str(value))
    if name in table.values():
        return name
    raise InvalidField(field, f"{field} must be one of {sorted(table)} or {sorted(set(table.values()))}, "
                              f"got {value!r}")


def _model(value: Any, names: Sequence[str], field: str) -> str:
    name = _HASH.sub("", str(value or "")).strip()
    if name in ("", "None"):
        raise InvalidField(field, f"{field}: an enabled unit needs a ControlNet model; see /controlnet/model_list")
    for candidate in names:
        if name in (candidate, candidate.rsplit(".", 1)[0]):
            return candidate
    raise InvalidField(field, f"{field}: ControlNet model {name!r} is unknown; available: "
                              f"{', '.join(n.rsplit('.', 1)[0] for n in names) or 'none'}")


def read_units(params: Mapping[str, Any], *, images: Mapping[int, str], model_names: Sequence[str],
               fallback_image: str | None) -> list[ControlUnit]:
    """Validate every enabled unit; `images` maps a unit's index to its stored image (else `fallback_image`,
    img2img's init image, as the extension uses)."""
    units = []
    for i, raw in enumerate(_args(params)):
        unit = _unit(raw, i)
        if unit is None:
            continue
        prefix = f"alwayson_scripts.controlnet.args[{i}]"
        for key, value in unit.items():
            test = _NEUTRAL.get(key)
            if key in _IGNORED or (test is not None and test(value)):
                continue
            field = f"{prefix}.{next((k for k, v in _ALIASES.items() if v == key and k in raw), key)}"
            if test is None:
                raise UnsupportedField(field, f"{field} is not a supported ControlNet unit field")
            raise UnsupportedField(field, f"{field}={value!r} is not supported; send it unset or at the "
                                          "extension's default")
        module = str(unit.get("module") or "none")
        if module.lower() not in MODULES:
            raise UnsupportedField(f"{prefix}.module", f"{prefix}.module: preprocessor {module!r} is not available; "
                                                       f"available: {', '.join(MODULES)} (send a ready control image)")
        mode = _mode(unit.get("control_mode", 0), _CONTROL_MODES, {}, f"{prefix}.control_mode")
        hr_option = _mode(unit.get("hr_option", "Both"), _HR_OPTIONS, {}, f"{prefix}.hr_option")
        resize = _mode(unit.get("resize_mode", 1), _RESIZE_MODES, _RESIZE_ALIASES, f"{prefix}.resize_mode")
        weight = _float(unit, "weight", 1.0, prefix)
        start, end = _float(unit, "guidance_start", 0.0, prefix), _float(unit, "guidance_end", 1.0, prefix)
        if not 0 <= weight <= 10:
            raise InvalidField(f"{prefix}.weight", f"{prefix}.weight must be between 0 and 10, got {weight}")
        if not 0 <= start < end <= 1:
            raise InvalidField(f"{prefix}.guidance_start", f"{prefix}: guidance_start and guidance_end must "
                                                           f"satisfy 0 <= start < end <= 1, got {start} and {end}")
        image = images.get(i, fallback_image)
        if image is None:
            raise InvalidField(f"{prefix}.image", f"{prefix}.image: an enabled unit needs a control image "
                                                  "(base64 in image or input_image)")
        units.append(ControlUnit(index=i, model=_model(unit.get("model"), model_names, f"{prefix}.model"),
                                 image=image, weight=weight, start=start, end=end, resize_mode=resize,
                                 control_mode=mode, hr_option=hr_option))
    return units


def apply_units(graph: dict[str, Any], units: Sequence[ControlUnit], *, conditioning: str, width: int,
                height: int, prefix: str = "") -> tuple[list, list]:
    """Chain one ControlNetApplyAdvanced per unit after the `conditioning` node (positive, negative outputs);
    returns the final positive and negative links. Hint images are sized to `width` × `height`. A `prefix`
    marks the hires pass (units whose `hr_option` is "Low res only" stay out of it, and "High res only" units
    act only there)."""
    positive, negative = [conditioning, 0], [conditioning, 1]
    for unit in (u for u in units if u.controls(hires_pass=bool(prefix))):
        node = f"{prefix}cn{unit.index}"
        graph[f"cn{unit.index}_model"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": unit.model}}
        graph[f"cn{unit.index}_image"] = {"class_type": "LoadImage", "inputs": {"image": unit.image}}
        graph[f"{node}_hint"] = {"class_type": "ControlNetHintA1111", "inputs": {
            "image": [f"cn{unit.index}_image", 0], "width": width, "height": height, "resize_mode": unit.resize_mode}}
        hint = [f"{node}_hint", 0]
        inputs = {"positive": positive, "negative": negative, "control_net": [f"cn{unit.index}_model", 0],
                  "image": hint, "strength": unit.weight, "start_percent": unit.start, "end_percent": unit.end}
        if unit.control_mode == "Balanced":  # ComfyUI's own node: the PNG's graph opens in ComfyUI
            graph[node] = {"class_type": "ControlNetApplyAdvanced", "inputs": inputs}
        else:
            graph[node] = {"class_type": "ControlNetApplyA1111",
                           "inputs": {**inputs, "control_mode": unit.control_mode}}
        positive, negative = [node, 0], [node, 1]
    return positive, negative
