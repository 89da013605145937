"""A1111's "Inpaint area: Only masked" (`inpaint_full_res`): the geometry and the resizes around it.

A1111 (`StableDiffusionProcessingImg2Img.init`, `modules/masking.py`, `images.resize_image`) takes the bounding box
of the final (inverted, blurred) 8-bit mask, widens it by `inpaint_full_res_padding`, grows it to the aspect ratio
of width × height, crops the image and the mask to it and resizes both to width × height ("resize and fill"). After
sampling, the generated image is resized back to the box ("crop and resize") and pasted over the original through
the mask, so pixels outside the box are the original's. Written from A1111's documented behaviour, not copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class CropBox:
    """A region of the original image: left, top (inclusive), right, bottom (exclusive), as PIL boxes."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) for PIL's crop."""
        return self.x1, self.y1, self.x2, self.y2


def mask_crop_region(mask: np.ndarray, padding: int) -> CropBox | None:
    """The box of an 8-bit [H, W] mask's non-zero pixels, widened by `padding` and kept inside the image; None when
    the mask is blank (A1111's `get_crop_region_v2`)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    height, width = mask.shape
    return CropBox(max(int(cols[0]) - padding, 0), max(int(rows[0]) - padding, 0),
                   min(int(cols[-1]) + 1 + padding, width), min(int(rows[-1]) + 1 + padding, height))


def _grow(low: int, high: int, wanted: float, limit: int) -> tuple[int, int]:
    """Grow [low, high) by int(wanted - size), split evenly (the extra pixel after), shifted back inside [0, limit)."""
    extra = int(wanted - (high - low))
    low, high = low - extra // 2, high + extra - extra // 2
    if high >= limit:
        low, high = low - (high - limit), limit
    if low < 0:
        low, high = 0, high - low
    return low, min(high, limit)


def expand_to_ratio(box: CropBox, *, width: int, height: int, image_width: int, image_height: int) -> CropBox:
    """Grow the box along one axis to the aspect ratio of width × height, inside the image where it fits
    (A1111's `expand_crop_region`)."""
    target = width / height
    if box.width / box.height > target:
        y1, y2 = _grow(box.y1, box.y2, box.width / target, image_height)
        return CropBox(box.x1, y1, box.x2, y2)
    x1, x2 = _grow(box.x1, box.x2, box.height * target, image_width)
    return CropBox(x1, box.y1, x2, box.y2)


def _lanczos(image: Image.Image, width: int, height: int) -> Image.Image:
    return image.resize((width, height), resample=Image.Resampling.LANCZOS)


def resize_and_fill(image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111's resize mode 2: fit inside width × height keeping the ratio, centred; the bands left over repeat the
    resized image's edge rows (or columns)."""
    ratio, source_ratio = width / height, image.width / image.height
    fit_w = width if ratio < source_ratio else image.width * height // image.height
    fit_h = height if ratio >= source_ratio else image.height * width // image.width
    resized = np.asarray(_lanczos(image, fit_w, fit_h))
    top, left = height // 2 - fit_h // 2, width // 2 - fit_w // 2
    out = np.zeros((height, width, *resized.shape[2:]), dtype=resized.dtype)
    # the part of the resized image that lands on the canvas (it overhangs by a pixel when rounding)
    src = resized[max(-top, 0):max(-top, 0) + height, max(-left, 0):max(-left, 0) + width]
    y0, x0 = max(top, 0), max(left, 0)
    out[y0:y0 + src.shape[0], x0:x0 + src.shape[1]] = src
    if ratio < source_ratio and top > 0:
        out[:top] = resized[:1, :width]
        out[top + fit_h:top + fit_h + top] = resized[-1:, :width]
    elif ratio > source_ratio and left > 0:
        out[:, :left] = resized[:height, :1]
        out[:, left + fit_w:left + fit_w + left] = resized[:height, -1:]
    return Image.fromarray(out)


def resize_and_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111's resize mode 1: cover width × height keeping the ratio, centred, the overhang cut off."""
    ratio, source_ratio = width / height, image.width / image.height
    cover_w = width if ratio > source_ratio else image.width * height // image.height
    cover_h = height if ratio <= source_ratio else image.height * width // image.width
    resized = _lanczos(image, cover_w, cover_h)
    canvas = Image.new(resized.mode, (width, height))
    canvas.paste(resized, (width // 2 - cover_w // 2, height // 2 - cover_h // 2))
    return canvas
