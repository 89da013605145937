"""A1111's `/extra-single-image` and `/extra-batch-images` as a graph: LoadImage → ExtrasUpscaleA1111 → SaveImage.

Torch-free: the API server compiles these requests. Face restoration (GFPGAN, CodeFormer) and a second
upscaler blended in are features sdfleet lacks: accepted at visibility 0, refused by name otherwise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sdfleet.engine.a1111_fields import InvalidField, UnsupportedField
from sdfleet.engine.a1111_hires import PIXEL_UPSCALERS

MAX_SIDE = 16384


@dataclass(frozen=True)
class ExtrasInput:
    """One stored input image: its name for LoadImage and its size."""

    name: str
    width: int
    height: int


@dataclass
class CompiledExtras:
    """The graph (one chain per image, saved in order) and A1111's info text."""

    graph: dict[str, Any]
    info: str


def _number(params: Mapping[str, Any], name: str, default: float, *, low: float, high: float) -> float:
    value = params.get(name, default)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidField(name, f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return value


def _upscaler(name: Any, models: Sequence[str], field: str) -> str:
    text = "None" if name is None else str(name)
    if text in PIXEL_UPSCALERS:
        return text
    match = next((m for m in models if m == text or m.rsplit(".", 1)[0] == text), None)
    if match is None:
        known = [*PIXEL_UPSCALERS, *(m.rsplit(".", 1)[0] for m in models)]
        raise InvalidField(field, f"{field} {text[:100]!r} is unknown; available: {', '.join(known)}")
    return match


def compile_extras(params: Mapping[str, Any], images: Sequence[ExtrasInput], *,
                   upscaler_names: Sequence[str] = ()) -> CompiledExtras:
    """The graph for an extras request over `images` (already stored); bad or missing features raise by name."""
    # 1. Check inputs
    for name in ("gfpgan_visibility", "codeformer_visibility"):
        if _number(params, name, 0, low=0, high=1):
            raise UnsupportedField(name, f"{name} > 0 (face restoration) is not supported; send 0")
    _number(params, "codeformer_weight", 0, low=0, high=1)
    if _number(params, "extras_upscaler_2_visibility", 0, low=0, high=1) and \
            str(params.get("upscaler_2") or "None") != "None":
        raise UnsupportedField("extras_upscaler_2_visibility",
                               "a second upscaler blended in is not supported; send extras_upscaler_2_visibility 0")
    resize_mode = params.get("resize_mode", 0)
    if resize_mode not in (0, 1, None) or isinstance(resize_mode, bool):
        raise InvalidField("resize_mode", f"resize_mode must be 0 (by a factor) or 1 (to a size), got {resize_mode!r}")
    resize_mode = resize_mode or 0
    factor = _number(params, "upscaling_resize", 2, low=0.01, high=16)
    width = int(_number(params, "upscaling_resize_w", 512, low=1, high=MAX_SIDE))
    height = int(_number(params, "upscaling_resize_h", 512, low=1, high=MAX_SIDE))
    crop = params.get("upscaling_crop", True) is not False
    upscaler = _upscaler(params.get("upscaler_1"), upscaler_names, "upscaler_1")
    if not images:
        raise InvalidField("image", "no image given")

    # 2. One chain per image
    graph: dict[str, Any] = {}
    node: dict[str, Any] = {"upscaler": upscaler, "resize_mode": resize_mode, "upscaling_resize": factor,
                            "width": width, "height": height, "crop": crop}
    if upscaler not in PIXEL_UPSCALERS:
        graph["upscaler"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": upscaler}}
        node.update(upscaler="model", upscale_model=["upscaler", 0])
    for i, image in enumerate(images):
        scale = max(width / image.width, height / image.height) if resize_mode == 1 else factor
        if upscaler != "None" and max(image.width, image.height) * scale > MAX_SIDE:
            raise InvalidField("upscaling_resize", f"image {i} would be upscaled past {MAX_SIDE} px")
        graph[f"image{i}"] = {"class_type": "LoadImage", "inputs": {"image": image.name}}
        graph[f"upscale{i}"] = {"class_type": "ExtrasUpscaleA1111", "inputs": {"image": [f"image{i}", 0], **node}}
        graph[f"save{i}"] = {"class_type": "SaveImage", "inputs": {"images": [f"upscale{i}", 0],
                                                                    "filename_prefix": "extras"}}
    info = ""
    if upscaler != "None":
        how = (f"Postprocess upscale to: {width}x{height}" if resize_mode == 1
               else f"Postprocess upscale by: {factor:g}")
        info = f"{how}, Postprocess upscaler: {params.get('upscaler_1')}"
        if resize_mode == 1 and crop:
            info += f", Postprocess crop to: {width}x{height}"
    return CompiledExtras(graph=graph, info=info)
