"""The work a graph asks for, before it runs: latent and image shapes propagated node by node.

Every node that changes size or batch (EmptyLatentImage, LatentUpscale/By, RepeatLatentBatch, ImageScale/By,
VAEEncode of a loaded image …) carries its output shape forward; each sampler then costs
max(width × height × batch, MIN_SAMPLER_PIXELS) × steps and each VAE pass width × height × batch. Torch-free:
the API server estimates with it, mirroring what the engine's nodes compute."""

from __future__ import annotations

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
        class_type, inputs = node.get("class_type"), node.get("inputs") or {}
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
            return max(_int(inputs.get("steps"), UNKNOWN_SIGMA_STEPS), 0)
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
            inputs = (node.get("inputs") or {}) if isinstance(node, Mapping) else {}
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
                 "LatentUpscaleBy": "samples", "ImageScale": "image", "ImageScaleBy": "image"}
_SAME_SHAPE = ("VAEDecode", "SetLatentNoiseMask", "KSampler", "KSamplerAdvanced", "KSamplerA1111", "InvertMask",
               "MaskBlur")


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
    if class_type == "RepeatLatentBatch":
        return {0: Shape(source.width, source.height, source.batch * max(_int(inputs.get("amount"), 1), 1))}
    if class_type == "LatentUpscaleBy":
        scale = _number(inputs.get("scale_by"), 1.0)
        return {0: Shape(round(source.width // 8 * scale) * 8, round(source.height // 8 * scale) * 8, source.batch)}
    if class_type == "LatentUpscale":
        width, height = latent_upscale_size(source.width // 8, source.height // 8, _int(inputs.get("width"), 0),
                                            _int(inputs.get("height"), 0))
        return {0: Shape(width // 8 * 8, height // 8 * 8, source.batch)}
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
