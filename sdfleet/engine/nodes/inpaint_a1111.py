"""A1111's inpainting fills: the masked pixels pre-filled from their surroundings (fills 0, 2, 3), and for 2 and 3
the masked area of the starting latent becomes noise or zeros.

A1111 (`StableDiffusionProcessingImg2Img.init`) resizes the final mask to the latent size (PIL's default
resampling), rounds it, and sets `init_latent × (1 − m) + noise × m` ("latent noise": one noise per image
from its seed, as the batch's first draw) or `init_latent × (1 − m)` ("latent nothing")."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

from sdfleet.engine.node_registry import NodeDefinition, NodeSpec, OutputSpec, combo_input, int_input, link_input
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.noise import A1111Noise, A1111Seeds

FILLS = ("latent noise", "latent nothing")


def latent_mask(mask: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """A1111's `latmask`: the 0..1 mask as an 8-bit image, resized to the latent, /255, rounded → [1,1,h,w]."""
    pixels = (mask.reshape(-1, mask.shape[-2], mask.shape[-1])[0].clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
    resized = np.asarray(Image.fromarray(pixels).convert("RGB").resize((width, height)), dtype=np.float32)
    return torch.from_numpy(np.around(resized[:, :, 0] / 255))[None, None]


def inpaint_fill_a1111(ctx: NodeContext, *, samples: dict, mask: torch.Tensor, fill: str,
                       seed: int) -> tuple[Any, ...]:
    """InpaintFillA1111: fill the masked area of the latent as A1111's inpainting_fill 2 or 3."""
    latent = samples["samples"]
    m = latent_mask(mask, latent.shape[3], latent.shape[2]).to(latent.dtype)
    out = dict(samples)
    if fill == "latent noise":
        noise = A1111Noise(tuple(latent.shape[1:]), A1111Seeds.for_batch(seed=seed, batch_size=latent.shape[0]))
        out["samples"] = latent * (1 - m) + noise.initial().to(latent.dtype) * m
    else:
        out["samples"] = latent * (1 - m)
    return (out,)


#: A1111's `masking.fill` passes: (blur radius, times composited), from the widest to none
FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


def prefill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's `masking.fill`: the unmasked pixels (premultiplied by 1 − mask) blurred ever less and composited
    over each other, so masked pixels take their surroundings' colours and unmasked ones stay as they are."""
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=Image.eval(mask.convert("L"), lambda v: 255 - v))
    out = Image.new("RGBA", image.size)
    for radius, times in FILL_PASSES:
        layer = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(times):
            out.alpha_composite(layer)
    return out.convert("RGB")


def inpaint_prefill_a1111(ctx: NodeContext, *, image: torch.Tensor, mask: torch.Tensor) -> tuple[Any, ...]:
    """InpaintPrefillA1111: fill each image's masked pixels as A1111 does before encoding (inpainting_fill ≠ 1)."""
    height, width = image.shape[1], image.shape[2]
    pixels = (mask.reshape(-1, mask.shape[-2], mask.shape[-1])[0].float().clamp(0, 1).cpu().numpy() * 255)
    m = Image.fromarray(pixels.round().astype(np.uint8))
    if m.size != (width, height):
        m = m.resize((width, height), resample=Image.Resampling.LANCZOS)
    out = []
    for one in image:
        rgb = Image.fromarray((one[..., :3].clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8))
        out.append(torch.from_numpy(np.asarray(prefill(rgb, m), dtype=np.float32) / 255.0))
    return (torch.stack(out),)


NODES = [
    NodeDefinition(NodeSpec(
        "InpaintPrefillA1111", (link_input("image", "IMAGE"), link_input("mask", "MASK")),
        (OutputSpec("IMAGE", "IMAGE"),), "image/inpaint", "Inpaint Prefill (A1111)",
        description="A1111's masked-content fill: masked pixels take the blurred colours around them (used before "
                    "encoding for inpainting_fill 0, 2 and 3)."),
        inpaint_prefill_a1111),
    NodeDefinition(NodeSpec(
        "InpaintFillA1111",
        (link_input("samples", "LATENT"), link_input("mask", "MASK"), combo_input("fill", FILLS),
         int_input("seed", default=0, max=2**32 - 1, seed=True)),
        (OutputSpec("LATENT", "LATENT"),), "latent/inpaint", "Inpaint Fill (A1111)",
        description="A1111's inpainting_fill 2 (latent noise from the images' seeds) and 3 (latent nothing)."),
        inpaint_fill_a1111),
]
