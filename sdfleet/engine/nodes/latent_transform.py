"""Latent nodes that combine, pick, crop and turn LATENTs ({"samples": [B, 4, H/8, W/8], …}), as ComfyUI's do:
LatentComposite, LatentCompositeMasked, LatentBlend, LatentFromBatch, LatentCrop, LatentFlip, LatentRotate."""

from __future__ import annotations

from typing import Any

import torch

from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    combo_input,
    float_input,
    int_input,
    link_input,
)
from sdfleet.engine.nodes.composite import composite_masked
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.latent import LATENT, MAX_RESOLUTION, _resize
from sdfleet.engine.nodes.mask import repeat_to
from sdfleet.engine.work_estimate import latent_crop_box

FLIP_METHODS = ("x-axis: vertically", "y-axis: horizontally")
ROTATIONS = ("none", "90 degrees", "180 degrees", "270 degrees")


def _feather_weights(piece: torch.Tensor, *, feather: int, x: int, y: int, height: int,
                     width: int) -> torch.Tensor:
    """LatentComposite's edge ramp: rows/columns near a side of the pasted piece that lies inside the
    destination are weighted (t + 1) / feather (t: the distance from that side)."""
    weights = torch.ones_like(piece)
    ph, pw = piece.shape[2], piece.shape[3]
    for t in range(min(feather, max(ph, pw))):
        factor = (1.0 / feather) * (t + 1)
        if y != 0 and t < ph:
            weights[:, :, t, :] *= factor
        if y + ph < height and t < ph:
            weights[:, :, ph - 1 - t, :] *= factor
        if x != 0 and t < pw:
            weights[:, :, :, t] *= factor
        if x + pw < width and t < pw:
            weights[:, :, :, pw - 1 - t] *= factor
    return weights


def latent_composite(ctx: NodeContext, *, samples_to: dict, samples_from: dict, x: int, y: int,
                     feather: int) -> tuple[Any, ...]:
    """LatentComposite: paste samples_from at (x, y) (pixels, multiples of 8), feathered inside the destination."""
    x, y, feather = x // 8, y // 8, feather // 8
    out = dict(samples_to)
    target = samples_to["samples"].clone()
    height, width = target.shape[2], target.shape[3]
    if x >= width or y >= height:
        out["samples"] = target
        return (out,)
    piece = repeat_to(samples_from["samples"], target.shape[0])[:, :, : height - y, : width - x]
    region = (slice(None), slice(None), slice(y, y + piece.shape[2]), slice(x, x + piece.shape[3]))
    if feather == 0:
        target[region] = piece
    else:
        weights = _feather_weights(piece, feather=feather, x=x, y=y, height=height, width=width)
        target[region] = piece * weights + target[region] * (1 - weights)
    out["samples"] = target
    return (out,)


def latent_composite_masked(ctx: NodeContext, *, destination: dict, source: dict, x: int, y: int,
                            resize_source: bool, mask: torch.Tensor | None = None) -> tuple[Any, ...]:
    """LatentCompositeMasked: ImageCompositeMasked's rule in latent space ((x, y) in pixels, divided by 8)."""
    out = dict(destination)
    target = destination["samples"]
    src = repeat_to(source["samples"], target.shape[0])
    composed = composite_masked(target.movedim(1, -1), src.movedim(1, -1), x=x // 8, y=y // 8, mask=mask,
                                resize_source=resize_source)
    out["samples"] = composed.movedim(-1, 1).contiguous()
    return (out,)


def latent_blend(ctx: NodeContext, *, samples1: dict, samples2: dict, blend_factor: float) -> tuple[Any, ...]:
    """LatentBlend: samples1 · f + samples2 · (1 - f), samples2 scaled (bicubic, centre crop) to samples1's size."""
    a, b = samples1["samples"], samples2["samples"]
    if a.shape[2:] != b.shape[2:]:
        b = _resize(b, "bicubic", a.shape[2], a.shape[3], "center")
    b = repeat_to(b, a.shape[0])
    out = dict(samples1)
    out["samples"] = a * blend_factor + b * (1 - blend_factor)
    return (out,)


def latent_from_batch(ctx: NodeContext, *, samples: dict, batch_index: int, length: int) -> tuple[Any, ...]:
    """LatentFromBatch: `length` items from `batch_index`; `batch_index` is remembered so the sampler draws
    the noise those items had in the whole batch (ComfyUI's prepare_noise)."""
    s_in = samples["samples"]
    start = min(s_in.shape[0] - 1, batch_index)
    length = min(s_in.shape[0] - start, length)
    out = dict(samples)
    out["samples"] = s_in[start:start + length].clone()
    if "noise_mask" in samples:
        masks = samples["noise_mask"]
        if masks.shape[0] == 1:
            out["noise_mask"] = masks.clone()
        else:
            out["noise_mask"] = repeat_to(masks, s_in.shape[0])[start:start + length].clone()
    if "batch_index" in samples:
        out["batch_index"] = list(samples["batch_index"])[start:start + length]
    else:
        out["batch_index"] = list(range(start, start + length))
    return (out,)


def latent_crop(ctx: NodeContext, *, samples: dict, width: int, height: int, x: int, y: int) -> tuple[Any, ...]:
    """LatentCrop: (x, y, width, height) in pixels; the start is kept at least 64 px from the far edges."""
    s = samples["samples"]
    left, top, right, bottom = latent_crop_box(s.shape[3], s.shape[2], width=width, height=height, x=x, y=y)
    out = dict(samples)
    out["samples"] = s[:, :, top:bottom, left:right]
    return (out,)


def latent_flip(ctx: NodeContext, *, samples: dict, flip_method: str) -> tuple[Any, ...]:
    """LatentFlip: 'x-axis' flips top to bottom, 'y-axis' left to right."""
    out = dict(samples)
    out["samples"] = torch.flip(samples["samples"], dims=[2] if flip_method.startswith("x") else [3])
    return (out,)


def latent_rotate(ctx: NodeContext, *, samples: dict, rotation: str) -> tuple[Any, ...]:
    """LatentRotate: clockwise by 90° steps."""
    out = dict(samples)
    out["samples"] = torch.rot90(samples["samples"], k=ROTATIONS.index(rotation), dims=[3, 2])
    return (out,)


_STEP8 = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}
_CROP_SIZE = {"default": 512, "min": 64, "max": MAX_RESOLUTION, "step": 8}

NODES = [
    NodeDefinition(NodeSpec(
        "LatentComposite",
        (link_input("samples_to", "LATENT"), link_input("samples_from", "LATENT"), int_input("x", **_STEP8),
         int_input("y", **_STEP8), int_input("feather", **_STEP8)),
        (LATENT,), "latent", "Latent Composite"), latent_composite),
    NodeDefinition(NodeSpec(
        "LatentCompositeMasked",
        (link_input("destination", "LATENT"), link_input("source", "LATENT"), int_input("x", **_STEP8),
         int_input("y", **_STEP8), InputSpec("resize_source", "BOOLEAN", default=False),
         link_input("mask", "MASK", optional=True)),
        (LATENT,), "latent", "LatentCompositeMasked"), latent_composite_masked),
    NodeDefinition(NodeSpec(
        "LatentBlend",
        (link_input("samples1", "LATENT"), link_input("samples2", "LATENT"),
         float_input("blend_factor", default=0.5, min=0, max=1, step=0.01)),
        (LATENT,), "_for_testing", "Latent Blend"), latent_blend),
    NodeDefinition(NodeSpec(
        "LatentFromBatch",
        (link_input("samples", "LATENT"), int_input("batch_index", default=0, min=0, max=63),
         int_input("length", default=1, min=1, max=64)),
        (LATENT,), "latent/batch", "Latent From Batch"), latent_from_batch),
    NodeDefinition(NodeSpec(
        "LatentCrop",
        (link_input("samples", "LATENT"), int_input("width", **_CROP_SIZE), int_input("height", **_CROP_SIZE),
         int_input("x", **_STEP8), int_input("y", **_STEP8)),
        (LATENT,), "latent/transform", "Crop Latent"), latent_crop),
    NodeDefinition(NodeSpec(
        "LatentFlip", (link_input("samples", "LATENT"), combo_input("flip_method", FLIP_METHODS)), (LATENT,),
        "latent/transform", "Flip Latent"), latent_flip),
    NodeDefinition(NodeSpec(
        "LatentRotate", (link_input("samples", "LATENT"), combo_input("rotation", ROTATIONS)), (LATENT,),
        "latent/transform", "Rotate Latent"), latent_rotate),
]
