"""Where an area- or mask-conditioned entry acts on the latent, and with what weight (ComfyUI's
`resolve_areas_and_cond_masks` and `get_area_and_mult`).

The denoiser runs the model on the entry's area only, multiplies the prediction by the weight and divides
each pixel's sum of weighted predictions by its sum of weights. An area without a mask fades in over up to
8 latent pixels on the sides that lie inside the latent, so regions blend."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sdfleet.engine.nodes.conditioning import Region

FUZZ = 8  # latent pixels an area's inner edges fade over (ComfyUI)
MIN_BOUNDS = 8  # a mask's bounding box is at least this many latent pixels a side


@dataclass(frozen=True)
class Placement:
    """The latent window an entry's model call sees and its per-pixel weight there ([B, C, height, width])."""

    top: int
    left: int
    height: int
    width: int
    weight: torch.Tensor

    def window(self, x: torch.Tensor) -> torch.Tensor:
        """The part of x [B, C, H, W] this entry acts on."""
        return x[:, :, self.top:self.top + self.height, self.left:self.left + self.width]

    @property
    def key(self) -> tuple[int, int, int, int]:
        return self.top, self.left, self.height, self.width


def _area(region: Region, height: int, width: int) -> tuple[int, int, int, int] | None:
    area = region.area
    if area is None:
        return None
    if area[0] == "percentage":
        _, h, w, y, x = area
        return max(1, round(h * height)), max(1, round(w * width)), round(y * height), round(x * width)
    return tuple(int(v) for v in area)  # type: ignore[return-value]


def _mask(region: Region, height: int, width: int) -> torch.Tensor | None:
    if region.mask is None:
        return None
    mask = region.mask.reshape(-1, region.mask.shape[-2], region.mask.shape[-1]).float()
    if mask.shape[-2:] != (height, width):
        mask = F.interpolate(mask[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return mask


def _bounds(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """The (height, width, y, x) box around the mask's non-zero pixels over the batch (8×8 at 0, 0 if none)."""
    found = torch.nonzero(mask.abs().amax(dim=0))
    if found.numel() == 0:
        return MIN_BOUNDS, MIN_BOUNDS, 0, 0
    (y0, x0), (y1, x1) = found.amin(dim=0).tolist(), found.amax(dim=0).tolist()
    return max(MIN_BOUNDS, y1 - y0 + 1), max(MIN_BOUNDS, x1 - x0 + 1), y0, x0


def _fade(weight: torch.Tensor, *, dim: int, offset: int, full: int) -> None:
    """Scale the first/last rows (dim 2) or columns (dim 3) of an area that lie inside the latent by (t + 1) / rr."""
    size = weight.shape[dim]
    rr = min(FUZZ, size // 4)
    for t in range(rr):
        factor = (t + 1) / rr
        if offset != 0:
            weight.narrow(dim, t, 1).mul_(factor)
        if offset + size < full:
            weight.narrow(dim, size - 1 - t, 1).mul_(factor)


def place(region: Region, shape: torch.Size, *, device: torch.device) -> Placement | None:
    """Where and how strongly an entry acts on a latent of `shape`; None when its area lies outside it."""
    batch, channels, height, width = shape
    mask = _mask(region, height, width)
    area = _area(region, height, width)
    if mask is not None and region.set_area_to_bounds:
        area = _bounds(mask)
    if area is None:
        top, left, h, w = 0, 0, height, width
    else:
        h, w, top, left = area
        h, w = min(height - top, h), min(width - left, w)
        if h <= 0 or w <= 0 or top < 0 or left < 0:
            return None
    if mask is not None:
        m = mask[:batch, top:top + h, left:left + w] * region.mask_strength
        m = m.repeat(-(-batch // m.shape[0]), 1, 1)[:batch]
        weight = m[:, None].expand(batch, channels, h, w).clone()
    else:
        weight = torch.ones((batch, channels, h, w))
    weight = weight * region.strength
    if mask is None and area is not None:
        _fade(weight, dim=2, offset=top, full=height)
        _fade(weight, dim=3, offset=left, full=width)
    return Placement(top, left, h, w, weight.to(device))
