"""A1111's upscaling: hires fix's latent modes and pixel `resize_image`, and the extras upscale (Lanczos, Nearest
or a model).

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
    float_input,
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


def to_pil(image: torch.Tensor, *, rounded: bool = False) -> Image.Image:
    """One [H,W,C] 0..1 image as A1111 makes its 8-bit image from samples (255 × value, truncated), or
    `rounded` (an 8-bit input image back exactly)."""
    values = 255.0 * image[..., :3].clamp(0, 1).cpu().numpy()
    return Image.fromarray((values.round() if rounded else values).astype(np.uint8))


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


def upscale(image: Image.Image, scale: float, upscaler: str,
            model_step: Callable[[Image.Image], Image.Image] | None = None) -> Image.Image:
    """A1111's `Upscaler.upscale(image, scale)` for Lanczos, Nearest or a model (`model_step`: one pass)."""
    if upscaler == "model":
        step = model_step
    else:
        method = LANCZOS if upscaler == "Lanczos" else NEAREST

        def step(im: Image.Image) -> Image.Image:
            return im.resize((int(im.width * scale), int(im.height * scale)), resample=method)
    return upscale_passes(image, scale, step)


def resize_image(image: Image.Image, width: int, height: int, upscaler: str,
                 model_step: Callable[[Image.Image], Image.Image] | None = None) -> Image.Image:
    """A1111's `images.resize_image(0, image, width, height, upscaler_name)` ("just resize")."""
    if upscaler == "None":
        return image.resize((width, height), resample=LANCZOS)
    scale = max(width / image.width, height / image.height)
    if scale > 1.0:
        image = upscale(image, scale, upscaler, model_step)
    if image.size != (width, height):
        image = image.resize((width, height), resample=LANCZOS)
    return image


def extras_upscale(image: Image.Image, *, upscaler: str, resize_mode: int, upscaling_resize: float, width: int,
                   height: int, crop: bool, model_step: Callable[[Image.Image], Image.Image] | None) -> Image.Image:
    """A1111's extras upscale (`postprocessing_upscale`): by a factor, or to cover width × height (then, with
    `crop`, centred on a black width × height canvas). Upscaler "None" leaves the image as it is."""
    if upscaler == "None":
        return image
    scale = max(width / image.width, height / image.height) if resize_mode == 1 else upscaling_resize
    image = upscale(image, scale, upscaler, model_step)
    if resize_mode == 1 and crop:
        canvas = Image.new("RGB", (width, height))
        canvas.paste(image, box=(width // 2 - image.width // 2, height // 2 - image.height // 2))
        image = canvas
    return image.convert("RGB")


def image_upscale_a1111(ctx: NodeContext, *, image: torch.Tensor, upscaler: str, width: int, height: int,
                        upscale_model: Any = None) -> tuple[Any, ...]:
    """ImageUpscaleA1111: each image through A1111's `resize_image` to width × height."""
    model_step = _model_step(ctx, upscaler, upscale_model)
    out = [from_pil(resize_image(to_pil(one), width, height, upscaler, model_step)) for one in image]
    return (torch.stack(out),)


def _model_step(ctx: NodeContext, upscaler: str, upscale_model: Any) -> Callable[[Image.Image], Image.Image] | None:
    if upscaler != "model":
        return None
    if upscale_model is None:
        raise ValueError("upscaler 'model' needs the upscale_model input")
    from sdfleet.engine.upscale_models import upscale_pil  # spandrel only when a model is used

    def step(im: Image.Image) -> Image.Image:
        ctx.check_cancel()
        return upscale_pil(upscale_model, im)
    return step


def extras_upscale_a1111(ctx: NodeContext, *, image: torch.Tensor, upscaler: str, resize_mode: int,
                         upscaling_resize: float, width: int, height: int, crop: bool,
                         upscale_model: Any = None) -> tuple[Any, ...]:
    """ExtrasUpscaleA1111: A1111's `/extra-single-image` upscale of each image."""
    step = _model_step(ctx, upscaler, upscale_model)
    out = [from_pil(extras_upscale(to_pil(one, rounded=True), upscaler=upscaler, resize_mode=resize_mode,
                                   upscaling_resize=upscaling_resize, width=width, height=height, crop=crop,
                                   model_step=step)) for one in image]
    if len({tuple(o.shape) for o in out}) > 1:
        raise ValueError("images of one batch upscaled to different sizes; send them one by one")
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
    NodeDefinition(NodeSpec(
        "ExtrasUpscaleA1111",
        (link_input("image", "IMAGE"), combo_input("upscaler", (*PIXEL_UPSCALERS, "model")),
         int_input("resize_mode", default=0, min=0, max=1),
         float_input("upscaling_resize", default=2.0, min=0.01, max=16.0),
         int_input("width", default=512, min=1, max=MAX_RESOLUTION),
         int_input("height", default=512, min=1, max=MAX_RESOLUTION),
         InputSpec("crop", "BOOLEAN", default=True), InputSpec("upscale_model", "UPSCALE_MODEL", optional=True)),
        (OutputSpec("IMAGE", "IMAGE"),), "image/upscaling", "Extras Upscale (A1111)",
        description="A1111's /extra-single-image upscale: by a factor (resize_mode 0) or to cover width × "
                    "height (1, centred on a canvas of that size with crop)."), extras_upscale_a1111),
]
