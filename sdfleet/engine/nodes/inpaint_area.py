"""A1111's "Only masked" inpainting as two nodes: crop the masked area to the sampling size, paste the result back.

`InpaintAreaCropA1111` gives the cropped image and mask at width × height and the box (an INPAINT_AREA);
`InpaintAreaPasteA1111` resizes the generated images to the box and blends them over the original image through
the full-size mask (A1111's `apply_overlay` with `paste_to`). The geometry is in `sdfleet.engine.inpaint_area`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from sdfleet.engine.inpaint_area import CropBox, expand_to_ratio, mask_crop_region, resize_and_crop, resize_and_fill
from sdfleet.engine.node_registry import NodeDefinition, NodeSpec, OutputSpec, int_input, link_input
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.hires import from_pil, to_pil
from sdfleet.engine.nodes.latent import MAX_RESOLUTION

AREA = "INPAINT_AREA"


class BlankMaskError(ValueError):
    """"Only masked" inpainting with a mask that masks nothing."""


def mask_bytes(mask: torch.Tensor) -> np.ndarray:
    """The first mask of a batch as A1111's 8-bit mask image ([H, W] uint8, rounded)."""
    m = mask.reshape(-1, mask.shape[-2], mask.shape[-1])[0]
    return (m.float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


def inpaint_area_crop(ctx: NodeContext, *, image: torch.Tensor, mask: torch.Tensor, width: int, height: int,
                      padding: int) -> tuple[Any, ...]:
    """InpaintAreaCropA1111: the masked area (box of the mask, + padding, grown to width:height) at width × height."""
    pixels = mask_bytes(mask)
    if pixels.shape != tuple(image.shape[1:3]):  # A1111 resizes the mask to the image
        pixels = np.asarray(Image.fromarray(pixels).resize((image.shape[2], image.shape[1]),
                                                           resample=Image.Resampling.LANCZOS))
    box = mask_crop_region(pixels, padding)
    if box is None:
        raise BlankMaskError("the inpainting mask is blank: \"Only masked\" (inpaint_full_res) has nothing to crop; "
                             "send a mask with white pixels or inpaint_full_res: false")
    box = expand_to_ratio(box, width=width, height=height, image_width=image.shape[2], image_height=image.shape[1])
    crops = [from_pil(resize_and_fill(to_pil(one, rounded=True).crop(box.as_tuple()), width, height))
             for one in image]
    crop_mask = resize_and_fill(Image.fromarray(pixels).crop(box.as_tuple()), width, height)
    mask_out = torch.from_numpy(np.asarray(crop_mask, dtype=np.float32) / 255.0)[None]
    return torch.stack(crops), mask_out, box


def paste_area(original: Image.Image, generated: Image.Image, mask: np.ndarray, box: CropBox) -> np.ndarray:
    """One generated image (width × height) back into the box of the original, blended through the 8-bit mask;
    a float [H, W, 3] array in 0..255 (outside the box: the original)."""
    back = np.asarray(resize_and_crop(generated, box.width, box.height), dtype=np.float32)
    out = np.asarray(original, dtype=np.float32).copy()
    alpha = mask[box.y1:box.y2, box.x1:box.x2, None].astype(np.float32) / 255.0
    region = out[box.y1:box.y2, box.x1:box.x2]
    out[box.y1:box.y2, box.x1:box.x2] = region * (1.0 - alpha) + back * alpha
    return out


def inpaint_area_paste(ctx: NodeContext, *, destination: torch.Tensor, source: torch.Tensor, mask: torch.Tensor,
                       area: CropBox) -> tuple[Any, ...]:
    """InpaintAreaPasteA1111: each generated image resized to the area and blended over the original."""
    pixels = mask_bytes(mask)
    if pixels.shape != tuple(destination.shape[1:3]):
        pixels = np.asarray(Image.fromarray(pixels).resize((destination.shape[2], destination.shape[1]),
                                                           resample=Image.Resampling.LANCZOS))
    out = []
    for i, generated in enumerate(source):
        original = to_pil(destination[min(i, destination.shape[0] - 1)], rounded=True)
        out.append(torch.from_numpy(paste_area(original, to_pil(generated), pixels, area) / 255.0))
    return (torch.stack(out).float(),)


_SIZE = {"default": 512, "min": 64, "max": MAX_RESOLUTION, "step": 8}

NODES = [
    NodeDefinition(NodeSpec(
        "InpaintAreaCropA1111",
        (link_input("image", "IMAGE"), link_input("mask", "MASK"), int_input("width", **_SIZE),
         int_input("height", **_SIZE), int_input("padding", default=32, min=0, max=MAX_RESOLUTION)),
        (OutputSpec("IMAGE", "IMAGE"), OutputSpec("MASK", "MASK"), OutputSpec(AREA, "AREA")),
        "image/inpaint", "Inpaint Area Crop (A1111)",
        description="A1111's \"Only masked\" inpainting: the mask's box, padded and grown to width:height, "
                    "cropped from the image and the mask and resized to width × height."),
        inpaint_area_crop),
    NodeDefinition(NodeSpec(
        "InpaintAreaPasteA1111",
        (link_input("destination", "IMAGE"), link_input("source", "IMAGE"), link_input("mask", "MASK"),
         link_input("area", AREA)),
        (OutputSpec("IMAGE", "IMAGE"),), "image/inpaint", "Inpaint Area Paste (A1111)",
        description="The generated images resized back to the area and blended over the original through the "
                    "mask, as A1111 pastes \"Only masked\" results."),
        inpaint_area_paste),
]
