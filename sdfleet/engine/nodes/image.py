"""Image nodes: loading images and masks, scaling, saving and previewing PNGs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from PIL import ImageOps

from sdfleet.engine.events import OutputImage
from sdfleet.engine.files import ModelFiles
from sdfleet.engine.image_admission import open_admitted
from sdfleet.engine.infotext import encode_png
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
from sdfleet.engine.nodes.latent import CROP_METHODS, IMAGE_UPSCALE_METHODS, MAX_RESOLUTION, _resize
from sdfleet.engine.work_estimate import image_scale_size

IMAGE = OutputSpec("IMAGE", "IMAGE")
CHANNELS = ("alpha", "red", "green", "blue")


def _image_fingerprint(files: ModelFiles, inputs: dict[str, Any]) -> tuple[str, int, int]:
    path = files.input_image(inputs["image"])
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def load_image(ctx: NodeContext, *, image: str) -> tuple[Any, ...]:
    """LoadImage: IMAGE [1,H,W,3] in 0..1 and MASK [1,H,W] = 1 - alpha (1 where transparent)."""
    with open_admitted(ctx.files.input_image(image), max_pixels=ctx.max_image_pixels) as raw:
        img = ImageOps.exif_transpose(raw)
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        if "A" in img.getbands():
            mask = 1.0 - np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        else:
            mask = np.zeros(rgb.shape[:2], dtype=np.float32)
    return torch.from_numpy(rgb)[None], torch.from_numpy(mask)[None]


def load_image_mask(ctx: NodeContext, *, image: str, channel: str) -> tuple[Any, ...]:
    """LoadImageMask: one channel as a MASK (alpha is inverted, as ComfyUI does)."""
    with open_admitted(ctx.files.input_image(image), max_pixels=ctx.max_image_pixels) as raw:
        img = ImageOps.exif_transpose(raw)
        band = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}[channel]
        if band == "A" and "A" not in img.getbands():
            return (torch.zeros((1, img.height, img.width)),)
        if band not in img.getbands():
            img = img.convert("RGBA")
        values = np.asarray(img.getchannel(band), dtype=np.float32) / 255.0
    mask = torch.from_numpy(values)[None]
    return ((1.0 - mask) if band == "A" else mask,)


def image_scale(ctx: NodeContext, *, image: torch.Tensor, upscale_method: str, width: int, height: int,
                crop: str) -> tuple[Any, ...]:
    """ImageScale: 0 for width or height keeps the aspect ratio."""
    if width == 0 and height == 0:
        return (image,)
    width, height = image_scale_size(image.shape[2], image.shape[1], width, height)
    out = _resize(image.movedim(-1, 1), upscale_method, height, width, crop).movedim(1, -1)
    return (out.clamp(0, 1),)


def image_scale_by(ctx: NodeContext, *, image: torch.Tensor, upscale_method: str, scale_by: float) -> tuple[Any, ...]:
    """ImageScaleBy."""
    height, width = round(image.shape[1] * scale_by), round(image.shape[2] * scale_by)
    return (_resize(image.movedim(-1, 1), upscale_method, height, width, "disabled").movedim(1, -1).clamp(0, 1),)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """IMAGE [B,H,W,C] 0..1 → uint8, rounded as diffusers' postprocessing does."""
    return (images.float().clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def _pngs(ctx: NodeContext, images: torch.Tensor, *, prefix: str, kind: str) -> list[OutputImage]:
    height, width = images.shape[1], images.shape[2]
    shared = {"prompt": json.dumps(ctx.graph)}
    for key, value in ctx.extra_pnginfo.items():
        shared[key] = value if isinstance(value, str) else json.dumps(value)
    level = 4 if kind == "output" else 1
    outputs = []
    for index, array in enumerate(to_uint8(images)):
        infotext = ctx.infotext(ctx.node_id, index)
        chunks = {"parameters": infotext, **shared} if infotext else shared
        png = encode_png(array, text_chunks=chunks, compress_level=level)
        outputs.append(OutputImage(ctx.node_id, png, width, height, prefix, kind,  # type: ignore[arg-type]
                                   seed=ctx.image_seed(ctx.node_id, index)))
    return outputs


def save_image(ctx: NodeContext, *, images: torch.Tensor, filename_prefix: str) -> tuple[Any, ...]:
    """SaveImage: PNGs with the A1111 `parameters` chunk and the graph as the `prompt` chunk."""
    return (_pngs(ctx, images, prefix=filename_prefix, kind="output"),)


def preview_image(ctx: NodeContext, *, images: torch.Tensor) -> tuple[Any, ...]:
    """PreviewImage: like SaveImage but temporary."""
    return (_pngs(ctx, images, prefix="ComfyUI_temp", kind="temp"),)


NODES = [
    NodeDefinition(NodeSpec(
        "LoadImage", (InputSpec("image", "COMBO", model_folder="input", image_upload=True),),
        (IMAGE, OutputSpec("MASK", "MASK")), "image", "Load Image", ignored_inputs=frozenset({"upload"})),
        load_image, _image_fingerprint),
    NodeDefinition(NodeSpec(
        "LoadImageMask",
        (InputSpec("image", "COMBO", model_folder="input", image_upload=True), combo_input("channel", CHANNELS)),
        (OutputSpec("MASK", "MASK"),), "mask", "Load Image (as Mask)", ignored_inputs=frozenset({"upload"})),
        load_image_mask, _image_fingerprint),
    NodeDefinition(NodeSpec(
        "ImageScale",
        (link_input("image", "IMAGE"), combo_input("upscale_method", IMAGE_UPSCALE_METHODS),
         int_input("width", default=512, min=0, max=MAX_RESOLUTION), int_input("height", default=512, min=0,
                                                                               max=MAX_RESOLUTION),
         combo_input("crop", CROP_METHODS)),
        (IMAGE,), "image/upscaling", "Upscale Image"), image_scale),
    NodeDefinition(NodeSpec(
        "ImageScaleBy",
        (link_input("image", "IMAGE"), combo_input("upscale_method", IMAGE_UPSCALE_METHODS),
         float_input("scale_by", default=1.0, min=0.01, max=8.0, step=0.01)),
        (IMAGE,), "image/upscaling", "Upscale Image By"), image_scale_by),
    NodeDefinition(NodeSpec(
        "SaveImage", (link_input("images", "IMAGE"), InputSpec("filename_prefix", "STRING", default="ComfyUI")),
        (), "image", "Save Image", output_node=True), save_image),
    NodeDefinition(NodeSpec(
        "PreviewImage", (link_input("images", "IMAGE"),), (), "image", "Preview Image", output_node=True),
        preview_image),
]
