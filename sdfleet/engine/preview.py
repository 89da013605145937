"""Cheap preview images from latents (a linear latent → RGB projection, as ComfyUI's Latent2RGB)."""

from __future__ import annotations

import io

import torch
from PIL import Image

# ComfyUI's SD 1.5 latent → RGB factors; close enough for SDXL previews too.
_FACTORS = torch.tensor([
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
])


def latent_preview_png(latents: torch.Tensor) -> bytes:
    """A small PNG of the first latent of a batch."""
    first = latents[0].float().cpu()
    if first.shape[0] != 4:
        first = first[:4] if first.shape[0] > 4 else torch.cat([first, first.new_zeros(4 - first.shape[0],
                                                                                        *first.shape[1:])])
    rgb = torch.einsum("chw,cr->hwr", first, _FACTORS)
    array = ((rgb + 1) / 2).clamp(0, 1).mul(255).byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
