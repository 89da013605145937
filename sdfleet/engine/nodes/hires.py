"""A1111's hires-fix upscaling: its latent modes and its pixel `resize_image` (with Lanczos, Nearest or a model).

A1111 upscales the first pass either in latent space (`shared.latent_upscale_modes`: torch interpolation,
some antialiased) or in pixels: decode, 8-bit image, `images.resize_image(0, …, upscaler_name)` which runs
the upscaler (up to three passes until the image reaches the scale) and Lanczos-resizes to the exact size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sdfleet.engine.a1111_hires import LATENT_MODES, PIXEL_UPSCALERS
from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    combo_input,
    int_input,
    link_input,
)
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.latent import MAX_RESOLUTION

LANCZOS, NEAREST = Image.Resampling.LANCZOS, Image.Resampling.NEAREST


def latent_upscale_a1111(ctx: NodeContext, *, samples: dict, upscale_method: str, width: int,
                         height: int) -> tuple[Any, ...]:
    """LatentUpscaleA1111: the latent to (height // 8, width // 8) as A1111's hires fix interpolates it."""
    mode, antialias = LATENT_MODES[upscale_method]
    out = dict(samples)
    out["samples"] = F.interpolate(samples["samples"], size=(height // 8, width // 8), mode=mode,
                                   antialias=antialias)
    out.pop("noise_mask", None)
    return (out,)


def to_pil(image: torch.Tensor) -> Image.Image:
    """One [H,W,C] 0..1 image as A1111 makes its 8-bit image (255 × value, truncated)."""
    return Image.fromarray((255.0 * image.clamp(0, 1).cpu().numpy()).astype(np.uint8))


def from_pil(image: Image.Image) -> torch.Tensor:
    """An 8-bit RGB image → [H,W,3] float 0..1."""
    return torch.from_numpy(np.asarray(image.convert("RGB")).astype(np.float32) / 255.0)


def upscale_passes(image: Image.Image, scale: float, step: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """A1111's `Upscaler.upscale`: run `step` until the image reaches `scale` (at most 3 passes), then Lanczos to
    the scaled size rounded down to a multiple of 8."""
    dest_w, dest_h = int((image.width * scale) // 8 * 8), int((image.height * scale) // 8 * 8)
    for i in range(3):
        if image.width >= dest_w and image.height >= dest_h and (i > 0 or scale != 1):
            break
        size = image.size
        image = step(image)
        if image.size == size:
            break
    if image.size != (dest_w, dest_h):
        image = image.resize((dest_w, dest_h), resample=LANCZOS)
    return image


def resize_image(image: Image.Image, width: int, height: int, upscaler: str,
                 model_step: Callable[[Image.Image], Image.Image] | None = None) -> Image.Image:
    """A1111's `images.resize_image(0, image, width, height, upscaler_name)` ("just resize")."""
    if upscaler == "None":
        return image.resize((width, height), resample=LANCZOS)
    scale = max(width / image.width, height / image.height)
    if scale > 1.0:
        if upscaler == "model":
            step = model_step
        else:
            method = LANCZOS if upscaler == "Lanczos" else NEAREST

            def step(im: Image.Image) -> Image.Image:
                return im.resize((int(im.width * scale), int(im.height * scale)), resample=method)
        image = upscale_passes(image, scale, step)
    if image.size != (width, height):
        image = image.resize((width, height), resample=LANCZOS)
    return image


def image_upscale_a1111(ctx: NodeContext, *, image: torch.Tensor, upscaler: str, width: int, height: int,
                        upscale_model: Any = None) -> tuple[Any, ...]:
    """ImageUpscaleA1111: each image through A1111's `resize_image` to width × height."""
    model_step = None
    if upscaler == "model":
        if upscale_model is None:
            raise ValueError("upscaler 'model' needs the upscale_model input")
        from sdfleet.engine.upscale_models import upscale_pil  # spandrel only when a model is used

        def model_step(im: Image.Image) -> Image.Image:
            ctx.check_cancel()
            return upscale_pil(upscale_model, im)
    out = [from_pil(resize_image(to_pil(one), width, height, upscaler, model_step)) for one in image]
    return (torch.stack(out),)


_SIZE = {"min": 8, "max": MAX_RESOLUTION}

NODES = [
    NodeDefinition(NodeSpec(
        "LatentUpscaleA1111",
        (link_input("samples", "LATENT"), combo_input("upscale_method", tuple(LATENT_MODES)),
         int_input("width", default=1024, **_SIZE), int_input("height", default=1024, **_SIZE)),
        (OutputSpec("LATENT", "LATENT"),), "latent", "Upscale Latent (A1111)",
        description="A1111's hires-fix latent upscale modes (Latent, antialiased, bicubic, nearest)."),
        latent_upscale_a1111),
    NodeDefinition(NodeSpec(
        "ImageUpscaleA1111",
        (link_input("image", "IMAGE"), combo_input("upscaler", (*PIXEL_UPSCALERS, "model")),
         int_input("width", default=1024, **_SIZE), int_input("height", default=1024, **_SIZE),
         InputSpec("upscale_model", "UPSCALE_MODEL", optional=True)),
        (OutputSpec("IMAGE", "IMAGE"),), "image/upscaling", "Upscale Image (A1111)",
        description="A1111's resize_image: the upscaler (Lanczos, Nearest or a model, up to three passes), "
                    "then a Lanczos resize to the exact size."), image_upscale_a1111),
]
