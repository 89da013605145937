"""The work a graph asks for, before it runs: latent and image shapes propagated node by node.

Every node that changes size or batch (EmptyLatentImage, LatentUpscale/By, RepeatLatentBatch, ImageScale/By,
VAEEncode of a loaded image, the image/mask/latent crop, pad, batch and composite nodes …) carries its output
shape forward; values that come from Primitive* nodes are read through them; each sampler then costs
max(width × height × batch, MIN_SAMPLER_PIXELS) × steps and each VAE pass width × height × batch. Torch-free:
the API server estimates with it, mirroring what the engine's nodes compute."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MIN_SAMPLER_PIXELS = 1024 * 1024  # a sampler step costs at least this much, whatever its size
SAMPLERS = ("KSampler", "KSamplerAdvanced", "KSamplerA1111", "SamplerCustom", "SamplerCustomAdvanced")
#: nodes making SIGMAS from a step count; SplitSigmas and FlipSigmas pass theirs on
SIGMA_SOURCES = ("BasicScheduler", "KarrasScheduler", "ExponentialScheduler", "SDTurboScheduler",
                 "AlignYourStepsScheduler")
UNKNOWN_SIGMA_STEPS = 1000  # a sigmas chain the estimate cannot follow is costed high, not free
VAE_PASSES = ("VAEDecode", "VAEEncode", "VAEEncodeForInpaint")


@dataclass(frozen=True)
class Shape:
    """An IMAGE, MASK or LATENT in pixel units (a latent is 1/8 of it)."""

    width: int
    height: int
    batch: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.batch

    def describe(self) -> str:
        return f"{self.width}x{self.height}" + (f" × batch {self.batch}" if self.batch != 1 else "")


@dataclass(frozen=True)
class NodeWork:
    """The work of one sampler or VAE node."""

    node_id: str
    class_type: str
    shape: Shape
    steps: int
    work: int

    def describe(self) -> str:
        steps = f" × {self.steps} steps" if self.class_type in SAMPLERS else ""
        return f"node {self.node_id} ({self.class_type}): {self.shape.describe()}{steps} = {self.work}"


@dataclass
class WorkEstimate:
    """The work of every costly node and their sum."""

    nodes: list[NodeWork] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n.work for n in self.nodes)

    def largest(self) -> NodeWork | None:
        return max(self.nodes, key=lambda n: n.work, default=None)


def estimate_work(graph: Mapping[str, Any], *, image_size: Callable[[str], tuple[int, int]]) -> WorkEstimate:
    """Propagate shapes through the graph and cost its samplers and VAE passes.

    `image_size(name)` gives a loaded input image's (width, height). Nodes whose shape cannot be known (a
    malformed input) are costed at the floor; the graph is expected to have passed validation."""
    shapes = propagate_shapes(graph, image_size)
    estimate = WorkEstimate()
    for node_id, node in graph.items():
        if not isinstance(node, Mapping):
            continue
        class_type, inputs = node.get("class_type"), resolve_values(graph, node.get("inputs") or {})
        if class_type in SAMPLERS:
            shape = shapes.get((str(node_id), 0)) or Shape(0, 0)
            steps = _sampler_steps(class_type, inputs, graph)
            work = max(shape.pixels, MIN_SAMPLER_PIXELS) * steps
        elif class_type in VAE_PASSES:
            shape = shapes.get((str(node_id), 0)) or Shape(0, 0)
            steps, work = 1, shape.pixels
        else:
            continue
        estimate.nodes.append(NodeWork(str(node_id), str(class_type), shape, steps, work))
    return estimate


def _sigma_steps(graph: Mapping[str, Any], link: Any) -> int:
    """The steps a SIGMAS input holds, following SplitSigmas / FlipSigmas up to the scheduler."""
    seen: set[str] = set()
    while _is_link(link) and str(link[0]) not in seen:
        seen.add(str(link[0]))
        node = graph.get(str(link[0]))
        inputs = (node.get("inputs") or {}) if isinstance(node, Mapping) else {}
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        if class_type in SIGMA_SOURCES:
            return max(_int(resolve_values(graph, inputs).get("steps"), UNKNOWN_SIGMA_STEPS), 0)
        if class_type not in ("SplitSigmas", "FlipSigmas"):
            break
        link = inputs.get("sigmas")
    return UNKNOWN_SIGMA_STEPS


def _sampler_steps(class_type: str, inputs: Mapping[str, Any], graph: Mapping[str, Any]) -> int:
    if class_type in ("SamplerCustom", "SamplerCustomAdvanced"):
        return _sigma_steps(graph, inputs.get("sigmas"))
    steps = _int(inputs.get("steps"), 1)
    if class_type == "KSamplerAdvanced":
        start, end = _int(inputs.get("start_at_step"), 0), _int(inputs.get("end_at_step"), steps)
        return max(0, min(end, steps) - max(start, 0))
    return max(steps, 0)


#: value nodes whose only output is their `value` literal (ComfyUI's Primitive* nodes)
PRIMITIVES = ("PrimitiveInt", "PrimitiveFloat", "PrimitiveString", "PrimitiveStringMultiline", "PrimitiveBoolean")


def resolve_values(graph: Mapping[str, Any], inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """`inputs` with links to Primitive* nodes replaced by the literal those nodes pass on."""
    resolved = None
    for name, value in inputs.items():
        if not _is_link(value) or value[1] != 0:
            continue
        source = graph.get(str(value[0]))
        if isinstance(source, Mapping) and source.get("class_type") in PRIMITIVES:
            literal = (source.get("inputs") or {}).get("value")
            if not _is_link(literal):
                resolved = dict(inputs) if resolved is None else resolved
                resolved[name] = literal
    return inputs if resolved is None else resolved


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def propagate_shapes(graph: Mapping[str, Any],
                     image_size: Callable[[str], tuple[int, int]]) -> dict[tuple[str, int], Shape]:
    """The shape of every (node, output index) that has one, in dependency order (iterative: chains may be long)."""
    shapes: dict[tuple[str, int], Shape] = {}
    done: set[str] = set()
    for root in graph:
        stack = [(str(root), False)]
        while stack:
            node_id, expanded = stack.pop()
            if node_id in done:
                continue
            node = graph.get(node_id)
            inputs = resolve_values(graph, node.get("inputs") or {}) if isinstance(node, Mapping) else {}
            if not expanded:
                stack.append((node_id, True))
                stack.extend((str(v[0]), False) for v in inputs.values() if _is_link(v) and str(v[0]) not in done)
                continue
            done.add(node_id)
            if isinstance(node, Mapping):
                for index, shape in _outputs(str(node.get("class_type")), inputs, shapes, image_size).items():
                    shapes[(node_id, index)] = shape
    return shapes


#: the input whose shape a node transforms
_SOURCE_INPUT = {"VAEDecode": "samples", "SetLatentNoiseMask": "samples", "KSampler": "latent_image",
                 "KSamplerAdvanced": "latent_image", "KSamplerA1111": "latent_image",
                 "SamplerCustom": "latent_image", "SamplerCustomAdvanced": "latent_image", "InvertMask": "mask",
                 "MaskBlur": "mask", "VAEEncode": "pixels",
                 "VAEEncodeForInpaint": "pixels", "RepeatLatentBatch": "samples", "LatentUpscale": "samples",
                 "LatentUpscaleBy": "samples", "ImageScale": "image", "ImageScaleBy": "image",
                 "ImageCompositeMasked": "destination", "LatentCompositeMasked": "destination",
                 "MaskComposite": "destination", "LatentComposite": "samples_to", "LatentBlend": "samples1",
                 "ImageBlend": "image1", "ImageBatch": "image1", "ImageInvert": "image", "ImageCrop": "image",
                 "ImagePadForOutpaint": "image", "ImageScaleToTotalPixels": "image", "ImageToMask": "image",
                 "MaskToImage": "mask", "GrowMask": "mask", "FeatherMask": "mask", "CropMask": "mask",
                 "LatentFromBatch": "samples", "LatentCrop": "samples", "LatentFlip": "samples",
                 "LatentRotate": "samples", "LatentUpscaleA1111": "samples", "ImageUpscaleA1111": "image",
                 "ImageUpscaleWithModel": "image", "ExtrasUpscaleA1111": "image",
                 "InpaintFillA1111": "samples", "InpaintAreaCropA1111": "image", "InpaintPrefillA1111": "image",
                 "InpaintAreaPasteA1111": "destination"}
_SAME_SHAPE = ("VAEDecode", "SetLatentNoiseMask", "KSampler", "KSamplerAdvanced", "KSamplerA1111", "InvertMask",
               "MaskBlur", "LatentComposite", "LatentBlend", "ImageBlend", "ImageInvert", "ImageToMask",
               "MaskToImage", "GrowMask", "FeatherMask", "LatentFlip", "InpaintFillA1111", "InpaintPrefillA1111")
#: nodes whose output has the first input's size and the larger batch of two inputs
_LARGER_BATCH = {"ImageCompositeMasked": "source", "MaskComposite": "source", "InpaintAreaPasteA1111": "source"}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _outputs(class_type: str, inputs: Mapping[str, Any], shapes: Mapping[tuple[str, int], Shape],
             image_size: Callable[[str], tuple[int, int]]) -> dict[int, Shape]:
    def linked(name: str) -> Shape | None:
        value = inputs.get(name)
        return shapes.get((str(value[0]), value[1])) if _is_link(value) else None

    if class_type == "EmptyLatentImage":
        width, height = _int(inputs.get("width"), 0) // 8 * 8, _int(inputs.get("height"), 0) // 8 * 8
        return {0: Shape(width, height, max(_int(inputs.get("batch_size"), 1), 1))}
    if class_type == "EmptyImage":
        return {0: Shape(max(_int(inputs.get("width"), 1), 1), max(_int(inputs.get("height"), 1), 1),
                         max(_int(inputs.get("batch_size"), 1), 1))}
    if class_type == "SolidMask":
        return {0: Shape(max(_int(inputs.get("width"), 1), 1), max(_int(inputs.get("height"), 1), 1))}
    if class_type in ("LoadImage", "LoadImageMask"):
        name = inputs.get("image")
        if not isinstance(name, str):
            return {}
        width, height = image_size(name)
        return {0: Shape(width, height), 1: Shape(width, height)}
    source = linked(_SOURCE_INPUT.get(class_type, ""))
    if source is None:
        return {}
    if class_type in ("VAEEncode", "VAEEncodeForInpaint"):  # the engine crops to a multiple of 8
        return {0: Shape(source.width // 8 * 8, source.height // 8 * 8, source.batch)}
    if class_type in ("SamplerCustom", "SamplerCustomAdvanced"):  # output and denoised_output
        return {0: source, 1: source}
    if class_type in _SAME_SHAPE:
        return {0: source}
    if class_type in _LARGER_BATCH:
        other = linked(_LARGER_BATCH[class_type])
        return {0: Shape(source.width, source.height, max(source.batch, other.batch if other else 1))}
    if class_type == "LatentCompositeMasked":  # the source is repeated or cut to the destination's batch
        return {0: source}
    if class_type == "ImageBatch":
        other = linked("image2")
        return {0: Shape(source.width, source.height, source.batch + (other.batch if other else 1))}
    if class_type in ("ImageCrop", "CropMask"):
        x, y = min(_int(inputs.get("x"), 0), source.width - 1), min(_int(inputs.get("y"), 0), source.height - 1)
        return {0: Shape(max(min(_int(inputs.get("width"), 1), source.width - x), 1),
                         max(min(_int(inputs.get("height"), 1), source.height - y), 1), source.batch)}
    if class_type == "InpaintAreaCropA1111":  # the masked area at the sampling size
        width, height = max(_int(inputs.get("width"), 8), 8), max(_int(inputs.get("height"), 8), 8)
        return {0: Shape(width, height, source.batch), 1: Shape(width, height)}
    if class_type == "ImagePadForOutpaint":
        width, height = outpaint_size(source.width, source.height, **{
            side: max(_int(inputs.get(side), 0), 0) for side in ("left", "top", "right", "bottom")})
        return {0: Shape(width, height, source.batch), 1: Shape(width, height)}
    if class_type == "ImageScaleToTotalPixels":
        width, height = total_pixels_size(source.width, source.height, _number(inputs.get("megapixels"), 1.0),
                                          max(_int(inputs.get("resolution_steps"), 1), 1))
        return {0: Shape(width, height, source.batch)}
    if class_type == "LatentFromBatch":
        start = min(source.batch - 1, max(_int(inputs.get("batch_index"), 0), 0))
        return {0: Shape(source.width, source.height,
                         max(min(source.batch - start, _int(inputs.get("length"), 1)), 1))}
    if class_type == "LatentCrop":
        left, top, right, bottom = latent_crop_box(
            source.width // 8, source.height // 8, width=_int(inputs.get("width"), 64),
            height=_int(inputs.get("height"), 64), x=_int(inputs.get("x"), 0), y=_int(inputs.get("y"), 0))
        return {0: Shape((right - left) * 8, (bottom - top) * 8, source.batch)}
    if class_type == "LatentRotate":
        turned = inputs.get("rotation") in ("90 degrees", "270 degrees")
        return {0: Shape(source.height, source.width, source.batch) if turned else source}
    if class_type == "RepeatLatentBatch":
        return {0: Shape(source.width, source.height, source.batch * max(_int(inputs.get("amount"), 1), 1))}
    if class_type == "LatentUpscaleBy":
        scale = _number(inputs.get("scale_by"), 1.0)
        return {0: Shape(round(source.width // 8 * scale) * 8, round(source.height // 8 * scale) * 8, source.batch)}
    if class_type == "LatentUpscale":
        width, height = latent_upscale_size(source.width // 8, source.height // 8, _int(inputs.get("width"), 0),
                                            _int(inputs.get("height"), 0))
        return {0: Shape(width // 8 * 8, height // 8 * 8, source.batch)}
    if class_type in ("LatentUpscaleA1111", "ImageUpscaleA1111"):  # A1111's hires fix: an exact size
        width, height = max(_int(inputs.get("width"), 8), 8), max(_int(inputs.get("height"), 8), 8)
        latent = class_type == "LatentUpscaleA1111"
        return {0: Shape(width // 8 * 8 if latent else width, height // 8 * 8 if latent else height, source.batch)}
    if class_type == "ExtrasUpscaleA1111":
        width, height = max(_int(inputs.get("width"), 1), 1), max(_int(inputs.get("height"), 1), 1)
        if inputs.get("upscaler") == "None":
            return {0: source}
        if inputs.get("resize_mode") == 1 and inputs.get("crop") is not False:
            return {0: Shape(width, height, source.batch)}
        scale = (max(width / max(source.width, 1), height / max(source.height, 1)) if inputs.get("resize_mode") == 1
                 else _number(inputs.get("upscaling_resize"), 2.0))
        return {0: Shape(int(source.width * scale) // 8 * 8, int(source.height * scale) // 8 * 8, source.batch)}
    if class_type == "ImageUpscaleWithModel":  # the model's factor is in the file: count the common 4×
        return {0: Shape(source.width * 4, source.height * 4, source.batch)}
    if class_type == "ImageScaleBy":
        scale = _number(inputs.get("scale_by"), 1.0)
        return {0: Shape(round(source.width * scale), round(source.height * scale), source.batch)}
    if class_type == "ImageScale":
        width, height = image_scale_size(source.width, source.height, _int(inputs.get("width"), 0),
                                         _int(inputs.get("height"), 0))
        return {0: Shape(width, height, source.batch)}
    return {}


def latent_upscale_size(latent_width: int, latent_height: int, width: int, height: int) -> tuple[int, int]:
    """LatentUpscale's target in pixels (ComfyUI's rule: 0 keeps the aspect ratio, at least 64)."""
    if width == 0 and height == 0:
        return latent_width * 8, latent_height * 8
    if width == 0:
        height = max(64, height)
        return max(64, round(latent_width * height / max(latent_height, 1))), height
    if height == 0:
        width = max(64, width)
        return width, max(64, round(latent_height * width / max(latent_width, 1)))
    return max(64, width), max(64, height)


def image_scale_size(old_width: int, old_height: int, width: int, height: int) -> tuple[int, int]:
    """ImageScale's target: 0 for width or height keeps the aspect ratio."""
    if width == 0 and height == 0:
        return old_width, old_height
    if width == 0:
        return max(1, round(old_width * height / max(old_height, 1))), height
    if height == 0:
        return width, max(1, round(old_height * width / max(old_width, 1)))
    return width, height


def outpaint_size(width: int, height: int, *, left: int, top: int, right: int, bottom: int) -> tuple[int, int]:
    """ImagePadForOutpaint's output size."""
    return width + left + right, height + top + bottom


def total_pixels_size(width: int, height: int, megapixels: float, resolution_steps: int = 1) -> tuple[int, int]:
    """ImageScaleToTotalPixels' target: the aspect ratio kept, about megapixels × 1024² pixels, each side a
    multiple of `resolution_steps` (at least one step)."""
    scale = math.sqrt(megapixels * 1024 * 1024 / max(width * height, 1))
    return (max(round(width * scale / resolution_steps), 1) * resolution_steps,
            max(round(height * scale / resolution_steps), 1) * resolution_steps)


def latent_crop_box(latent_width: int, latent_height: int, *, width: int, height: int, x: int,
                    y: int) -> tuple[int, int, int, int]:
    """LatentCrop's (left, top, right, bottom) in latent units: the start at most 8 latent pixels (64 px) from
    the far edges, as ComfyUI, and never before the start."""
    left = max(0, min(x // 8, latent_width - 8))
    top = max(0, min(y // 8, latent_height - 8))
    return left, top, min(left + width // 8, latent_width), min(top + height // 8, latent_height)
