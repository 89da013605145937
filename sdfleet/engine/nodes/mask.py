"""Mask nodes: ComfyUI's mask set (solid, composite, grow, feather, crop, image ↔ mask, invert) and a Gaussian
blur for A1111's mask_blur. A MASK is [B, H, W] in 0..1; nodes accept [H, W] too, as ComfyUI's do."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    combo_input,
    float_input,
    int_input,
    link_input,
)
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.image import IMAGE
from sdfleet.engine.nodes.latent import MAX_RESOLUTION

MASK = OutputSpec("MASK", "MASK")
MASK_OPERATIONS = ("multiply", "add", "subtract", "and", "or", "xor")
IMAGE_CHANNELS = ("red", "green", "blue", "alpha")


def as_batch(mask: torch.Tensor) -> torch.Tensor:
    """[H, W] or [B, H, W] (or [B, 1, H, W]) → [B, H, W]."""
    return mask.reshape(-1, mask.shape[-2], mask.shape[-1])


def repeat_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Repeat (or cut) a batch to `size` items, as ComfyUI's repeat_to_batch_size."""
    if x.shape[0] == size:
        return x
    repeats = -(-size // x.shape[0])
    return x.repeat(repeats, *([1] * (x.dim() - 1)))[:size]


def solid_mask(ctx: NodeContext, *, value: float, width: int, height: int) -> tuple[Any, ...]:
    """SolidMask: one [1, H, W] mask filled with `value`."""
    return (torch.full((1, height, width), float(value), dtype=torch.float32),)


def mask_composite(ctx: NodeContext, *, destination: torch.Tensor, source: torch.Tensor, x: int, y: int,
                   operation: str) -> tuple[Any, ...]:
    """MaskComposite: combine `source` into `destination` at (x, y); the result is clamped to 0..1.

    Batches of different sizes are repeated to the larger one (ComfyUI broadcasts a batch of one)."""
    destination, source = as_batch(destination).float(), as_batch(source).float()
    batch = max(destination.shape[0], source.shape[0])
    output, source = repeat_to(destination, batch).clone(), repeat_to(source, batch)
    right, bottom = min(x + source.shape[-1], output.shape[-1]), min(y + source.shape[-2], output.shape[-2])
    if right > x and bottom > y:
        src = source[:, : bottom - y, : right - x]
        dst = output[:, y:bottom, x:right]
        if operation == "multiply":
            combined = dst * src
        elif operation == "add":
            combined = dst + src
        elif operation == "subtract":
            combined = dst - src
        else:
            a, b = dst.round().bool(), src.round().bool()
            combined = {"and": a & b, "or": a | b, "xor": a ^ b}[operation].float()
        output[:, y:bottom, x:right] = combined
    return (output.clamp(0.0, 1.0),)


def image_to_mask(ctx: NodeContext, *, image: torch.Tensor, channel: str) -> tuple[Any, ...]:
    """ImageToMask: one channel of an IMAGE; the alpha of an image without one is opaque (1)."""
    index = IMAGE_CHANNELS.index(channel)
    if index >= image.shape[-1]:
        return (torch.ones(image.shape[:-1], dtype=torch.float32),)
    return (image[..., index].float(),)


def mask_to_image(ctx: NodeContext, *, mask: torch.Tensor) -> tuple[Any, ...]:
    """MaskToImage: a grey IMAGE [B, H, W, 3]."""
    return (as_batch(mask).float()[..., None].expand(-1, -1, -1, 3).contiguous(),)


def _shifted_extreme(m: torch.Tensor, *, grow: bool, tapered: bool) -> torch.Tensor:
    """One grey dilation (grow) or erosion of [B, H, W] with a 3×3 footprint (a cross when tapered), edges
    repeated (scipy.ndimage's default 'reflect' border for a radius of one)."""
    padded = F.pad(m[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    height, width = m.shape[-2:]
    offsets = [(1, 1), (0, 1), (2, 1), (1, 0), (1, 2)]
    if not tapered:
        offsets += [(0, 0), (0, 2), (2, 0), (2, 2)]
    views = torch.stack([padded[:, dy:dy + height, dx:dx + width] for dy, dx in offsets])
    return views.amax(dim=0) if grow else views.amin(dim=0)


def grow_mask(ctx: NodeContext, *, mask: torch.Tensor, expand: int, tapered_corners: bool) -> tuple[Any, ...]:
    """GrowMask: `expand` dilations (negative: erosions) with a 3×3 footprint, a cross with tapered corners.

    After height + width passes the mask no longer changes, so larger values stop there."""
    out = as_batch(mask).float()
    passes = min(abs(expand), out.shape[-1] + out.shape[-2])
    for _ in range(passes):
        ctx.check_cancel()
        out = _shifted_extreme(out, grow=expand > 0, tapered=tapered_corners)
    return (out,)


def _ramp(size: int, start: int, end: int) -> torch.Tensor:
    """Per-position factors: (k + 1) / start for the first `start` positions, (k + 1) / end from the far side."""
    factors = torch.ones(size, dtype=torch.float32)
    if start:
        factors[:start] *= torch.arange(1, start + 1, dtype=torch.float32) / start
    if end:
        factors[size - end:] *= torch.flip(torch.arange(1, end + 1, dtype=torch.float32) / end, dims=[0])
    return factors


def feather_mask(ctx: NodeContext, *, mask: torch.Tensor, left: int, top: int, right: int,
                 bottom: int) -> tuple[Any, ...]:
    """FeatherMask: fade the mask linearly to its edges over the given widths (each at most the mask's size)."""
    out = as_batch(mask).float()
    height, width = out.shape[-2:]
    columns = _ramp(width, min(left, width), min(right, width))
    rows = _ramp(height, min(top, height), min(bottom, height))
    return (out * rows[:, None] * columns[None, :],)


def crop_mask(ctx: NodeContext, *, mask: torch.Tensor, x: int, y: int, width: int, height: int) -> tuple[Any, ...]:
    """CropMask: the region at (x, y); a start past the edge keeps the last row/column (never an empty mask)."""
    m = as_batch(mask)
    x, y = min(x, m.shape[-1] - 1), min(y, m.shape[-2] - 1)
    return (m[:, y:y + height, x:x + width].clone(),)


def invert_mask(ctx: NodeContext, *, mask: torch.Tensor) -> tuple[Any, ...]:
    """InvertMask."""
    return (1.0 - mask,)


def blur_mask(ctx: NodeContext, *, mask: torch.Tensor, blur_radius: int) -> tuple[Any, ...]:
    """MaskBlur: a Gaussian blur with sigma = radius, as A1111 applies `mask_blur`."""
    if blur_radius == 0:
        return (mask,)
    size = 2 * int(2.5 * blur_radius + 0.5) + 1
    x = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-(x**2) / (2 * blur_radius**2))
    kernel = kernel / kernel.sum()
    m = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    m = F.pad(m, (size // 2,) * 4, mode="replicate")
    m = F.conv2d(m, kernel.view(1, 1, 1, -1))
    m = F.conv2d(m, kernel.view(1, 1, -1, 1))
    return (m[:, 0].clamp(0, 1),)


_COORD = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}
_SIZE = {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}

NODES = [
    NodeDefinition(NodeSpec("InvertMask", (link_input("mask", "MASK"),), (MASK,), "mask", "InvertMask"),
                   invert_mask),
    NodeDefinition(NodeSpec(
        "SolidMask",
        (float_input("value", default=1.0, min=0.0, max=1.0, step=0.01), int_input("width", **_SIZE),
         int_input("height", **_SIZE)),
        (MASK,), "mask", "SolidMask"), solid_mask),
    NodeDefinition(NodeSpec(
        "MaskComposite",
        (link_input("destination", "MASK"), link_input("source", "MASK"), int_input("x", **_COORD),
         int_input("y", **_COORD), combo_input("operation", MASK_OPERATIONS)),
        (MASK,), "mask", "MaskComposite"), mask_composite),
    NodeDefinition(NodeSpec(
        "ImageToMask", (link_input("image", "IMAGE"), combo_input("channel", IMAGE_CHANNELS)), (MASK,), "mask",
        "Convert Image to Mask"), image_to_mask),
    NodeDefinition(NodeSpec(
        "MaskToImage", (link_input("mask", "MASK"),), (IMAGE,), "mask", "Convert Mask to Image"), mask_to_image),
    NodeDefinition(NodeSpec(
        "GrowMask",
        (link_input("mask", "MASK"), int_input("expand", default=0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION),
         InputSpec("tapered_corners", "BOOLEAN", default=True)),
        (MASK,), "mask", "GrowMask"), grow_mask),
    NodeDefinition(NodeSpec(
        "FeatherMask",
        (link_input("mask", "MASK"), int_input("left", **_COORD), int_input("top", **_COORD),
         int_input("right", **_COORD), int_input("bottom", **_COORD)),
        (MASK,), "mask", "FeatherMask"), feather_mask),
    NodeDefinition(NodeSpec(
        "CropMask",
        (link_input("mask", "MASK"), int_input("x", **_COORD), int_input("y", **_COORD),
         int_input("width", **_SIZE), int_input("height", **_SIZE)),
        (MASK,), "mask", "CropMask"), crop_mask),
    NodeDefinition(NodeSpec("MaskBlur", (link_input("mask", "MASK"), int_input("blur_radius", default=4, min=0,
                                                                                 max=64)),
                            (MASK,), "mask", "Mask Blur (A1111 mask_blur)"), blur_mask),
]
