"""Latent nodes: empty latents, VAE encode/decode, upscaling, batching, noise masks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sdfleet.engine.model_loader import VaeRef
from sdfleet.engine.node_registry import (
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    combo_input,
    float_input,
    int_input,
    link_input,
)
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.work_estimate import latent_upscale_size

MAX_RESOLUTION = 16384
UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
#: ComfyUI's image scaling methods (lanczos instead of bislerp)
IMAGE_UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_METHODS = ("disabled", "center")


def empty_latent(ctx: NodeContext, *, width: int, height: int, batch_size: int) -> tuple[Any, ...]:
    """EmptyLatentImage: zeros at 1/8 of the image size."""
    return ({"samples": torch.zeros([batch_size, 4, height // 8, width // 8])},)


def vae_decode(ctx: NodeContext, *, samples: dict, vae: VaeRef) -> tuple[Any, ...]:
    """VAEDecode: latents → IMAGE [B,H,W,C] in 0..1 on the CPU, as diffusers' postprocessing."""
    model = ctx.models.vae(vae)
    latents = samples["samples"].to(ctx.device, model.dtype)
    config = model.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
        latents = latents * std_t / config.scaling_factor + mean_t
    else:
        latents = latents / config.scaling_factor
    image = model.decode(latents, return_dict=False)[0]
    image = (image / 2 + 0.5).clamp(0, 1)
    return (image.movedim(1, -1).float().cpu(),)


def _encode(ctx: NodeContext, vae: VaeRef, pixels: torch.Tensor) -> torch.Tensor:
    model = ctx.models.vae(vae)
    height, width = pixels.shape[1] // 8 * 8, pixels.shape[2] // 8 * 8
    x = pixels[:, :height, :width, :3].movedim(-1, 1).to(ctx.device, model.dtype) * 2 - 1
    latents = model.encode(x).latent_dist.mode()
    config = model.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
        return ((latents - mean_t) * config.scaling_factor / std_t).float().cpu()
    return (latents * config.scaling_factor).float().cpu()


def vae_encode(ctx: NodeContext, *, pixels: torch.Tensor, vae: VaeRef) -> tuple[Any, ...]:
    """VAEEncode: the latent distribution's mode, scaled (no sampling, so no hidden randomness)."""
    return ({"samples": _encode(ctx, vae, pixels)},)


def _latent_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    m = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    return F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)


def vae_encode_for_inpaint(ctx: NodeContext, *, pixels: torch.Tensor, vae: VaeRef, mask: torch.Tensor,
                           grow_mask_by: int) -> tuple[Any, ...]:
    """VAEEncodeForInpaint: grey out the masked area, encode, and attach the (grown) mask."""
    height, width = pixels.shape[1] // 8 * 8, pixels.shape[2] // 8 * 8
    pixels = pixels[:, :height, :width, :3].clone()
    m = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float(), size=(height, width),
                      mode="bilinear", align_corners=False)
    if grow_mask_by > 0:
        kernel = torch.ones((1, 1, grow_mask_by, grow_mask_by))
        pad = grow_mask_by // 2
        grown = torch.clamp(F.conv2d(m.round(), kernel, padding=pad), 0, 1)[..., :height, :width]
    else:
        grown = m
    keep = (1.0 - m.round()).movedim(1, -1)
    pixels = (pixels - 0.5) * keep + 0.5
    return ({"samples": _encode(ctx, vae, pixels), "noise_mask": grown[:, :, :height, :width]},)


def set_latent_noise_mask(ctx: NodeContext, *, samples: dict, mask: torch.Tensor) -> tuple[Any, ...]:
    """SetLatentNoiseMask: only the masked area is re-noised and denoised."""
    return ({**samples, "noise_mask": mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()},)


def _resize(x: torch.Tensor, method: str, height: int, width: int, crop: str) -> torch.Tensor:
    """Resize [B,C,H,W]; 'center' crops to the target aspect first."""
    if crop == "center":
        old_h, old_w = x.shape[-2:]
        old_aspect, new_aspect = old_w / old_h, width / height
        if old_aspect > new_aspect:
            cut = round((old_w - old_w * new_aspect / old_aspect) / 2)
            x = x[..., :, cut: old_w - cut]
        elif old_aspect < new_aspect:
            cut = round((old_h - old_h * old_aspect / new_aspect) / 2)
            x = x[..., cut: old_h - cut, :]
    if method == "lanczos":
        return _lanczos(x, height, width)
    mode = "bilinear" if method == "bislerp" else method
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(x, size=(height, width), mode=mode, **kwargs)


def _lanczos(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """ComfyUI's lanczos: each image through 8-bit PIL (so values are quantised to 1/255, as there)."""
    out = []
    for image in x:
        pixels = (image.movedim(0, -1).float().cpu().numpy() * 255.0).clip(0, 255).astype(np.uint8)
        resized = Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).resize(
            (width, height), resample=Image.Resampling.LANCZOS)
        array = np.asarray(resized, dtype=np.float32) / 255.0
        out.append(torch.from_numpy(array.reshape(height, width, -1)).movedim(-1, 0))
    return torch.stack(out).to(x.device, x.dtype)


def latent_upscale(ctx: NodeContext, *, samples: dict, upscale_method: str, width: int, height: int,
                   crop: str) -> tuple[Any, ...]:
    """LatentUpscale: 0 for width or height keeps the aspect ratio; sizes are at least 64 (as ComfyUI)."""
    x = samples["samples"]
    if width == 0 and height == 0:
        return (samples,)
    width, height = latent_upscale_size(x.shape[3], x.shape[2], width, height)
    out = dict(samples)
    out["samples"] = _resize(x, upscale_method, height // 8, width // 8, crop)
    out.pop("noise_mask", None)
    return (out,)


def latent_upscale_by(ctx: NodeContext, *, samples: dict, upscale_method: str, scale_by: float) -> tuple[Any, ...]:
    """LatentUpscaleBy."""
    x = samples["samples"]
    out = dict(samples)
    out["samples"] = _resize(x, upscale_method, round(x.shape[2] * scale_by), round(x.shape[3] * scale_by),
                             "disabled")
    out.pop("noise_mask", None)
    return (out,)


def repeat_latent_batch(ctx: NodeContext, *, samples: dict, amount: int) -> tuple[Any, ...]:
    """RepeatLatentBatch."""
    out = dict(samples)
    out["samples"] = samples["samples"].repeat(amount, 1, 1, 1)
    if "noise_mask" in samples and samples["noise_mask"].shape[0] > 1:
        out["noise_mask"] = samples["noise_mask"].repeat(amount, 1, 1, 1)
    if "batch_index" in samples:  # the copies keep drawing their own noise (ComfyUI's offsets)
        indices = list(samples["batch_index"])
        offset = max(indices) - min(indices) + 1
        out["batch_index"] = indices + [i + k * offset for k in range(1, amount) for i in indices]
    return (out,)


_SIZE = {"min": 16, "max": MAX_RESOLUTION, "step": 8}
LATENT = OutputSpec("LATENT", "LATENT")

NODES = [
    NodeDefinition(NodeSpec(
        "EmptyLatentImage",
        (int_input("width", default=512, **_SIZE), int_input("height", default=512, **_SIZE),
         int_input("batch_size", default=1, min=1, max=4096)),
        (LATENT,), "latent", "Empty Latent Image"), empty_latent),
    NodeDefinition(NodeSpec(
        "VAEDecode", (link_input("samples", "LATENT"), link_input("vae", "VAE")),
        (OutputSpec("IMAGE", "IMAGE"),), "latent", "VAE Decode"), vae_decode),
    NodeDefinition(NodeSpec(
        "VAEEncode", (link_input("pixels", "IMAGE"), link_input("vae", "VAE")), (LATENT,), "latent",
        "VAE Encode"), vae_encode),
    NodeDefinition(NodeSpec(
        "VAEEncodeForInpaint",
        (link_input("pixels", "IMAGE"), link_input("vae", "VAE"), link_input("mask", "MASK"),
         int_input("grow_mask_by", default=6, min=0, max=64)),
        (LATENT,), "latent/inpaint", "VAE Encode (for Inpainting)"), vae_encode_for_inpaint),
    NodeDefinition(NodeSpec(
        "SetLatentNoiseMask", (link_input("samples", "LATENT"), link_input("mask", "MASK")), (LATENT,),
        "latent/inpaint", "Set Latent Noise Mask"), set_latent_noise_mask),
    NodeDefinition(NodeSpec(
        "LatentUpscale",
        (link_input("samples", "LATENT"), combo_input("upscale_method", UPSCALE_METHODS),
         int_input("width", default=512, min=0, max=MAX_RESOLUTION, step=8),
         int_input("height", default=512, min=0, max=MAX_RESOLUTION, step=8), combo_input("crop", CROP_METHODS)),
        (LATENT,), "latent", "Upscale Latent"), latent_upscale),
    NodeDefinition(NodeSpec(
        "LatentUpscaleBy",
        (link_input("samples", "LATENT"), combo_input("upscale_method", UPSCALE_METHODS),
         float_input("scale_by", default=1.5, min=0.01, max=8.0, step=0.01)),
        (LATENT,), "latent", "Upscale Latent By"), latent_upscale_by),
    NodeDefinition(NodeSpec(
        "RepeatLatentBatch", (link_input("samples", "LATENT"), int_input("amount", default=1, min=1, max=64)),
        (LATENT,), "latent/batch", "Repeat Latent Batch"), repeat_latent_batch),
]
