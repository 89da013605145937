"""Mask nodes: inversion (ComfyUI's InvertMask) and a Gaussian blur for A1111's mask_blur."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sdfleet.engine.node_registry import NodeDefinition, NodeSpec, OutputSpec, int_input, link_input
from sdfleet.engine.nodes.context import NodeContext

MASK = OutputSpec("MASK", "MASK")


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


NODES = [
    NodeDefinition(NodeSpec("InvertMask", (link_input("mask", "MASK"),), (MASK,), "mask", "InvertMask"),
                   invert_mask),
    NodeDefinition(NodeSpec("MaskBlur", (link_input("mask", "MASK"), int_input("blur_radius", default=4, min=0,
                                                                                 max=64)),
                            (MASK,), "mask", "Mask Blur (A1111 mask_blur)"), blur_mask),
]
