"""ImageCompositeMasked (ComfyUI's name, inputs and placement rules): paste `source` onto `destination` at
(x, y), blended through an optional mask. A1111 inpainting uses it to keep the original pixels outside the
mask (its `apply_overlay`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sdfleet.engine.node_registry import InputSpec, NodeDefinition, NodeSpec, OutputSpec, int_input, link_input
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.latent import MAX_RESOLUTION


def _to_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Repeat (or cut) a batch to `size` items, as ComfyUI does for mismatched batches."""
    if images.shape[0] == size:
        return images
    repeats = -(-size // images.shape[0])
    return images.repeat(repeats, *([1] * (images.dim() - 1)))[:size]


def composite_masked(destination: torch.Tensor, source: torch.Tensor, *, x: int, y: int,
                     mask: torch.Tensor | None = None, resize_source: bool = False) -> torch.Tensor:
    """IMAGE tensors [B,H,W,C] in 0..1; the result has the destination's size and the larger batch."""
    batch = max(destination.shape[0], source.shape[0])
    out = _to_batch(destination, batch).clone()
    height, width = out.shape[1], out.shape[2]
    src = source.movedim(-1, 1)
    if resize_source:
        src = F.interpolate(src, size=(height, width), mode="bilinear", align_corners=False)
    src = _to_batch(src, batch)
    if mask is None:
        weight = torch.ones((batch, 1, src.shape[2], src.shape[3]), dtype=src.dtype)
    else:
        weight = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float(),
                               size=(src.shape[2], src.shape[3]), mode="bilinear", align_corners=False)
        weight = _to_batch(weight, batch)
    # Where the source lands, clipped to the destination (x, y may push it partly outside).
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + src.shape[3], width), min(y + src.shape[2], height)
    if right <= left or bottom <= top:
        return out
    region = (slice(None), slice(None), slice(top - y, bottom - y), slice(left - x, right - x))
    piece, alpha = src[region], weight[region]
    target = out.movedim(-1, 1)[:, :, top:bottom, left:right]
    blended = piece * alpha + target * (1.0 - alpha)
    out[:, top:bottom, left:right, :] = blended.movedim(1, -1)
    return out


def image_composite_masked(ctx: NodeContext, *, destination: torch.Tensor, source: torch.Tensor, x: int, y: int,
                           resize_source: bool, mask: torch.Tensor | None = None) -> tuple[Any, ...]:
    """ImageCompositeMasked."""
    return (composite_masked(destination, source, x=x, y=y, mask=mask, resize_source=resize_source).clamp(0, 1),)


NODES = [
    NodeDefinition(NodeSpec(
        "ImageCompositeMasked",
        (link_input("destination", "IMAGE"), link_input("source", "IMAGE"),
         int_input("x", default=0, min=0, max=MAX_RESOLUTION, step=1),
         int_input("y", default=0, min=0, max=MAX_RESOLUTION, step=1),
         InputSpec("resize_source", "BOOLEAN", default=False), link_input("mask", "MASK", optional=True)),
        (OutputSpec("IMAGE", "IMAGE"),), "image", "ImageCompositeMasked"), image_composite_masked),
]
