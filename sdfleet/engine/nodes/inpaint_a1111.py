"""A1111's inpainting fills 2 and 3: the masked area of the starting latent becomes noise or zeros.

A1111 (`StableDiffusionProcessingImg2Img.init`) resizes the final mask to the latent size (PIL's default
resampling), rounds it, and sets `init_latent × (1 − m) + noise × m` ("latent noise": one noise per image
from its seed, as the batch's first draw) or `init_latent × (1 − m)` ("latent nothing")."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

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


NODES = [
    NodeDefinition(NodeSpec(
        "InpaintFillA1111",
        (link_input("samples", "LATENT"), link_input("mask", "MASK"), combo_input("fill", FILLS),
         int_input("seed", default=0, max=2**32 - 1, seed=True)),
        (OutputSpec("LATENT", "LATENT"),), "latent/inpaint", "Inpaint Fill (A1111)",
        description="A1111's inpainting_fill 2 (latent noise from the images' seeds) and 3 (latent nothing)."),
        inpaint_fill_a1111),
]
