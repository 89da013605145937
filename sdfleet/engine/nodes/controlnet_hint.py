"""ControlNetHintA1111: a control image sized to the generation as the A1111 ControlNet extension sizes it.

The extension's `detectmap_proc` with its three resize modes: "Just Resize" (stretch), "Crop and Resize" (cover
then crop the middle) and "Resize and Fill" (fit inside, pad with the median colour of the image's border).
The extension resamples with OpenCV (area when shrinking, cubic when growing, nearest for maps of few colours);
here the resampling is bilinear, as the engine's own hint resize."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sdfleet.engine.node_registry import NodeDefinition, NodeSpec, OutputSpec, combo_input, int_input, link_input
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.latent import MAX_RESOLUTION

#: the extension's resize modes (`external_code.ResizeMode`), in the order of their API numbers
RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)


def _border_median(x: torch.Tensor) -> torch.Tensor:
    """Per image and channel, numpy's median of the border pixels in 0..255, cast to 8 bits ([B, C] in 0..1)."""
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    values = (border * 255).round().sort(dim=-1).values
    n = values.shape[-1]
    middle = values[..., n // 2] if n % 2 else (values[..., n // 2 - 1] + values[..., n // 2]) / 2
    return middle.floor() / 255


def size_hint(image: torch.Tensor, *, width: int, height: int, resize_mode: str) -> torch.Tensor:
    """[B, H, W, C] in 0..1 → [B, height, width, C], by the extension's rule for `resize_mode`."""
    x = image.movedim(-1, 1).float()
    old_h, old_w = x.shape[-2:]
    if resize_mode == RESIZE_MODES[0]:
        return _resize(x, height, width).movedim(1, -1)
    k0, k1 = height / old_h, width / old_w
    if resize_mode == RESIZE_MODES[2]:
        k = min(k0, k1)
        new_h, new_w = round(old_h * k), round(old_w * k)
        out = _border_median(x)[:, :, None, None].expand(-1, -1, height, width).clone()
        top, left = max(0, (height - new_h) // 2), max(0, (width - new_w) // 2)
        out[..., top:top + new_h, left:left + new_w] = _resize(x, new_h, new_w)[..., :height, :width]
        return out.movedim(1, -1)
    k = max(k0, k1)
    new_h, new_w = round(old_h * k), round(old_w * k)
    top, left = max(0, (new_h - height) // 2), max(0, (new_w - width) // 2)
    return _resize(x, new_h, new_w)[..., top:top + height, left:left + width].movedim(1, -1)


def controlnet_hint_a1111(ctx: NodeContext, *, image: torch.Tensor, width: int, height: int,
                          resize_mode: str) -> tuple[Any, ...]:
    """ControlNetHintA1111."""
    return (size_hint(image, width=width, height=height, resize_mode=resize_mode),)


NODES = [
    NodeDefinition(NodeSpec(
        "ControlNetHintA1111",
        (link_input("image", "IMAGE"), int_input("width", default=512, min=8, max=MAX_RESOLUTION, step=8),
         int_input("height", default=512, min=8, max=MAX_RESOLUTION, step=8),
         combo_input("resize_mode", RESIZE_MODES, default="Crop and Resize")),
        (OutputSpec("IMAGE", "IMAGE"),), "image/controlnet", "ControlNet Hint (A1111)",
        "A control image sized to width × height as the A1111 ControlNet extension does: Just Resize, Crop and "
        "Resize (cover, crop the middle) or Resize and Fill (fit, pad with the border's median colour)."),
        controlnet_hint_a1111),
]
