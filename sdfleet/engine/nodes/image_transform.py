"""Image nodes that make, combine and reshape IMAGE tensors ([B, H, W, C] in 0..1), as ComfyUI's do:
EmptyImage, ImageInvert, ImageBatch, ImageCrop, ImagePadForOutpaint, ImageBlend, ImageScaleToTotalPixels."""

from __future__ import annotations

from typing import Any

import torch

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
from sdfleet.engine.nodes.latent import IMAGE_UPSCALE_METHODS, MAX_RESOLUTION, _resize
from sdfleet.engine.nodes.mask import repeat_to
from sdfleet.engine.work_estimate import outpaint_size, total_pixels_size

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def empty_image(ctx: NodeContext, *, width: int, height: int, batch_size: int, color: int) -> tuple[Any, ...]:
    """EmptyImage: a batch filled with the 0xRRGGBB colour."""
    rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 0xFF
    return (rgb.expand(batch_size, height, width, 3).contiguous(),)


def image_invert(ctx: NodeContext, *, image: torch.Tensor) -> tuple[Any, ...]:
    """ImageInvert: 1 - image."""
    return (1.0 - image,)


def image_batch(ctx: NodeContext, *, image1: torch.Tensor, image2: torch.Tensor) -> tuple[Any, ...]:
    """ImageBatch: image2 follows image1, scaled (bilinear, centre crop) to image1's size when they differ."""
    if image1.shape[1:] != image2.shape[1:]:
        image2 = _resize(image2.movedim(-1, 1), "bilinear", image1.shape[1],
                         image1.shape[2], "center").movedim(1, -1)
    return (torch.cat((image1, image2), dim=0),)


def image_crop(ctx: NodeContext, *, image: torch.Tensor, width: int, height: int, x: int, y: int) -> tuple[Any, ...]:
    """ImageCrop: the region at (x, y); a start past the edge keeps the last row/column."""
    x, y = min(x, image.shape[2] - 1), min(y, image.shape[1] - 1)
    return (image[:, y:y + height, x:x + width, :].clone(),)


def _outpaint_mask(height: int, width: int, *, left: int, top: int, right: int, bottom: int,
                   feathering: int) -> torch.Tensor:
    """1 over the new border; inside the original, ((feathering - d) / feathering)² within `feathering` pixels of
    a padded side (d: the distance to the nearest padded side), as ComfyUI's ImagePadForOutpaint."""
    mask = torch.ones((height + top + bottom, width + left + right), dtype=torch.float32)
    inner = torch.zeros((height, width), dtype=torch.float32)
    if feathering > 0 and feathering * 2 < height and feathering * 2 < width:
        rows = torch.arange(height, dtype=torch.float32)[:, None]
        cols = torch.arange(width, dtype=torch.float32)[None, :]
        far_h, far_w = torch.full_like(rows, height), torch.full_like(cols, width)
        d = torch.minimum(
            torch.minimum(rows if top else far_h, (height - rows) if bottom else far_h),
            torch.minimum(cols if left else far_w, (width - cols) if right else far_w))
        v = (feathering - d) / feathering
        inner = torch.where(d < feathering, v * v, inner)
    mask[top:top + height, left:left + width] = inner
    return mask


def image_pad_for_outpaint(ctx: NodeContext, *, image: torch.Tensor, left: int, top: int, right: int,
                           bottom: int, feathering: int) -> tuple[Any, ...]:
    """ImagePadForOutpaint: grey (0.5) borders and a MASK that is 1 where the sampler must paint."""
    batch, height, width, channels = image.shape
    new_width, new_height = outpaint_size(width, height, left=left, top=top, right=right, bottom=bottom)
    out = torch.full((batch, new_height, new_width, channels), 0.5, dtype=torch.float32)
    out[:, top:top + height, left:left + width, :] = image
    mask = _outpaint_mask(height, width, left=left, top=top, right=right, bottom=bottom, feathering=feathering)
    return out, mask[None]


def _soft_light_g(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.25, ((16 * x - 12) * x + 4) * x, torch.sqrt(x))


def _blend(a: torch.Tensor, b: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "normal":
        return b
    if mode == "multiply":
        return a * b
    if mode == "screen":
        return 1 - (1 - a) * (1 - b)
    if mode == "overlay":
        return torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    if mode == "soft_light":
        return torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (_soft_light_g(a) - a))
    return a - b  # difference


def image_blend(ctx: NodeContext, *, image1: torch.Tensor, image2: torch.Tensor, blend_factor: float,
                blend_mode: str) -> tuple[Any, ...]:
    """ImageBlend: image1 · (1 - f) + mode(image1, image2) · f, image2 scaled (bicubic, centre crop) to image1."""
    if image1.shape[1:] != image2.shape[1:]:
        image2 = _resize(image2.movedim(-1, 1), "bicubic", image1.shape[1], image1.shape[2], "center").movedim(1, -1)
    image2 = repeat_to(image2, image1.shape[0])
    blended = image1 * (1 - blend_factor) + _blend(image1, image2, blend_mode) * blend_factor
    return (blended.clamp(0, 1),)


def image_scale_to_total_pixels(ctx: NodeContext, *, image: torch.Tensor, upscale_method: str, megapixels: float,
                                resolution_steps: int = 1) -> tuple[Any, ...]:
    """ImageScaleToTotalPixels: keep the aspect ratio, about `megapixels` × 1024² pixels, sides rounded to
    multiples of `resolution_steps`."""
    width, height = total_pixels_size(image.shape[2], image.shape[1], megapixels, resolution_steps)
    return (_resize(image.movedim(-1, 1), upscale_method, height, width, "disabled").movedim(1, -1),)


_COORD = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}
_SIZE = {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}
_PAD = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}

NODES = [
    NodeDefinition(NodeSpec(
        "EmptyImage",
        (int_input("width", **_SIZE), int_input("height", **_SIZE),
         int_input("batch_size", default=1, min=1, max=4096), int_input("color", default=0, min=0, max=0xFFFFFF)),
        (IMAGE,), "image", "EmptyImage"), empty_image),
    NodeDefinition(NodeSpec("ImageInvert", (link_input("image", "IMAGE"),), (IMAGE,), "image", "Invert Image"),
                   image_invert),
    NodeDefinition(NodeSpec(
        "ImageBatch", (link_input("image1", "IMAGE"), link_input("image2", "IMAGE")), (IMAGE,), "image",
        "Batch Images"), image_batch),
    NodeDefinition(NodeSpec(
        "ImageCrop",
        (link_input("image", "IMAGE"), int_input("width", **_SIZE), int_input("height", **_SIZE),
         int_input("x", **_COORD), int_input("y", **_COORD)),
        (IMAGE,), "image/transform", "ImageCrop"), image_crop),
    NodeDefinition(NodeSpec(
        "ImagePadForOutpaint",
        (link_input("image", "IMAGE"), int_input("left", **_PAD), int_input("top", **_PAD),
         int_input("right", **_PAD), int_input("bottom", **_PAD),
         int_input("feathering", default=40, min=0, max=MAX_RESOLUTION)),
        (IMAGE, OutputSpec("MASK", "MASK")), "image", "Pad Image for Outpainting"), image_pad_for_outpaint),
    NodeDefinition(NodeSpec(
        "ImageBlend",
        (link_input("image1", "IMAGE"), link_input("image2", "IMAGE"),
         float_input("blend_factor", default=0.5, min=0.0, max=1.0, step=0.01), combo_input("blend_mode", BLEND_MODES)),
        (IMAGE,), "image/postprocessing", "Image Blend"), image_blend),
    NodeDefinition(NodeSpec(
        "ImageScaleToTotalPixels",
        (link_input("image", "IMAGE"), combo_input("upscale_method", IMAGE_UPSCALE_METHODS),
         float_input("megapixels", default=1.0, min=0.01, max=16.0, step=0.01),
         InputSpec("resolution_steps", "INT", default=1, min=1, max=256, step=1, optional=True)),
        (IMAGE,), "image/upscaling", "ImageScaleToTotalPixels"), image_scale_to_total_pixels),
]
