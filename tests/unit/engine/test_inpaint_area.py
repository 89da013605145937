"""A1111's "Only masked" inpainting (inpaint_full_res): the crop geometry against A1111's documented examples, and the
whole path against crop → plain inpainting → paste computed independently here."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from sdfleet.engine.a1111 import compile_a1111
from sdfleet.engine.executor import Engine
from sdfleet.engine.inpaint_area import CropBox, expand_to_ratio, mask_crop_region, resize_and_crop, resize_and_fill
from sdfleet.engine.nodes.inpaint_area import BlankMaskError, inpaint_area_crop


def _mask(height: int, width: int, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    for x1, y1, x2, y2 in boxes:
        mask[y1:y2, x1:x2] = 255
    return mask


def test_crop_region_is_the_box_of_the_mask_widened_by_the_padding() -> None:
    # masking.get_crop_region's docstring: the top-right quarter of a 512² image → (256, 0, 512, 256)
    assert mask_crop_region(_mask(512, 512, (256, 0, 512, 256)), 0) == CropBox(256, 0, 512, 256)
    # two strokes: one box around both; padding widens it on every side and stops at the image's edges
    mask = _mask(100, 200, (30, 40, 50, 60), (120, 70, 130, 95))
    assert mask_crop_region(mask, 0) == CropBox(30, 40, 130, 95)
    assert mask_crop_region(mask, 10) == CropBox(20, 30, 140, 100)
    assert mask_crop_region(mask, 64) == CropBox(0, 0, 194, 100)
    # one faint pixel counts (A1111 tests `!= 0` on the 8-bit mask); a blank mask has no region
    faint = np.zeros((10, 10), dtype=np.uint8)
    faint[7, 3] = 1
    assert mask_crop_region(faint, 0) == CropBox(3, 7, 4, 8)
    assert mask_crop_region(np.zeros((10, 10), dtype=np.uint8), 32) is None


@pytest.mark.parametrize(("box", "size", "image", "expected"), [
    # expand_crop_region's docstring: a 128×32 mask box processed at 512² becomes 128×128
    (CropBox(100, 200, 228, 232), (512, 512), (1024, 1024), CropBox(100, 152, 228, 280)),
    # a tall box for a wide target grows sideways, the odd extra pixel on the right
    (CropBox(50, 10, 61, 40), (64, 32), (200, 100), CropBox(26, 10, 86, 40)),
    # near the bottom edge: pushed up to stay inside the image
    (CropBox(10, 90, 50, 100), (64, 64), (200, 100), CropBox(10, 60, 50, 100)),
    # near the left edge: pushed right
    (CropBox(0, 10, 10, 50), (64, 64), (200, 100), CropBox(0, 10, 40, 50)),
    # wider than the image allows: clamped to the image (A1111 keeps what fits)
    (CropBox(0, 0, 200, 10), (64, 64), (200, 100), CropBox(0, 0, 200, 100)),
    # the growth is int(wanted − size): 30 / (64/48) = 22.5 rows wanted, 12 added to 10 → 22 rows
    (CropBox(10, 10, 40, 20), (64, 48), (100, 100), CropBox(10, 4, 40, 26)),
])
def test_expand_to_ratio_as_a1111(box, size, image, expected) -> None:
    got = expand_to_ratio(box, width=size[0], height=size[1], image_width=image[0], image_height=image[1])
    assert got == expected


def test_resize_and_fill_repeats_the_edges_and_resize_and_crop_covers() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (30, 60, 3), dtype=np.uint8))
    filled = np.asarray(resize_and_fill(image, 64, 64))
    inner = np.asarray(image.resize((64, 32), resample=Image.Resampling.LANCZOS))
    assert filled.shape == (64, 64, 3)
    assert np.array_equal(filled[16:48], inner)
    assert (filled[:16] == inner[0]).all() and (filled[48:] == inner[-1]).all()
    covered = np.asarray(resize_and_crop(image, 64, 64))
    wide = np.asarray(image.resize((128, 64), resample=Image.Resampling.LANCZOS))
    assert np.array_equal(covered, wide[:, 32:96])


def test_crop_node_refuses_a_blank_mask() -> None:
    with pytest.raises(BlankMaskError, match="inpaint_full_res"):
        inpaint_area_crop(None, image=torch.zeros((1, 32, 32, 3)), mask=torch.zeros((1, 32, 32)), width=64,
                          height=64, padding=0)


def test_crop_node_uses_the_blurred_masks_extent() -> None:
    mask = torch.zeros((1, 100, 100))
    mask[0, 40:60, 40:60] = 1.0
    mask[0, 38, 50] = 0.3 / 255  # rounds to 0 in the 8-bit mask: outside the region
    mask[0, 61, 50] = 0.6 / 255  # rounds to 1: inside
    image = torch.rand((1, 100, 100, 3))
    _, crop_mask, box = inpaint_area_crop(None, image=image, mask=mask, width=64, height=64, padding=0)
    assert box == CropBox(39, 40, 61, 62)  # 20 × 22 grown to 22 × 22, the extra column split 1 left / 0 right
    assert crop_mask.shape == (1, 64, 64)


def _png(array: np.ndarray, path) -> None:
    Image.fromarray(array).save(path)


def _payload(**extra) -> dict:
    return {"prompt": "a cat", "negative_prompt": "blurry", "seed": 7, "steps": 3, "cfg_scale": 5,
            "sampler_name": "Euler", "denoising_strength": 0.75, "mask_blur": 0,
            "override_settings": {"sd_model_checkpoint": "sd1.safetensors"}, **extra}


def test_only_masked_equals_crop_then_inpaint_then_paste(files, tmp_path) -> None:
    rng = np.random.default_rng(3)
    original = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    mask = _mask(96, 128, (70, 20, 90, 40))
    _png(original, tmp_path / "init.png")
    _png(mask, tmp_path / "mask.png")
    files.images.update({"init.png": tmp_path / "init.png", "mask.png": tmp_path / "mask.png"})
    compiled = compile_a1111("img2img", _payload(width=128, height=64, inpaint_full_res=True,
                                                 inpaint_full_res_padding=8),
                             default_checkpoint=None, input_images=["init.png"], mask_image="mask.png")
    result = Engine().run(compiled.graph, files=files).images
    out = Image.open(io.BytesIO(result[0].png))
    assert out.size == (128, 96)  # the original's size, as A1111 pastes back
    assert "Size: 128x64" in out.info["parameters"] and "Inpaint area: Only masked" in out.info["parameters"]
    assert "Masked area padding: 8" in out.info["parameters"] and "Masked content: fill" in out.info["parameters"]
    assert "Mask blur" not in out.info["parameters"]  # mask_blur 0, as A1111 leaves it out
    got = np.asarray(out.convert("RGB")).astype(np.int16)

    # The reference: the mask's box (70, 20)-(90, 40), padded by 8 → 36 × 36, grown to 2:1 → 72 × 36 at x 44..116,
    # sampled at 128 × 64.
    x1, y1, x2, y2 = 44, 12, 116, 48
    outside = np.ones((96, 128), dtype=bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(got[outside], original[outside])  # untouched outside the crop region
    crop = Image.fromarray(original).crop((x1, y1, x2, y2)).resize((128, 64), resample=Image.Resampling.LANCZOS)
    crop_mask = Image.fromarray(mask).crop((x1, y1, x2, y2)).resize((128, 64), resample=Image.Resampling.LANCZOS)
    crop.save(tmp_path / "crop.png")
    crop_mask.save(tmp_path / "crop_mask.png")
    files.images.update({"crop.png": tmp_path / "crop.png", "crop_mask.png": tmp_path / "crop_mask.png"})
    plain = compile_a1111("img2img", _payload(width=128, height=64, inpaint_full_res=False),
                          default_checkpoint=None, input_images=["crop.png"], mask_image="crop_mask.png").graph
    plain["save0"]["inputs"]["images"] = ["decode0", 0]  # the generated crop, before any overlay
    generated = Engine().run(plain, files=files).images[0]
    sample = np.asarray(Image.open(io.BytesIO(generated.png)).convert("RGB"))
    back = np.asarray(Image.fromarray(sample).resize((72, 36), resample=Image.Resampling.LANCZOS), dtype=np.float64)
    alpha = mask[y1:y2, x1:x2, None] / 255.0
    expected = original.astype(np.float64)
    expected[y1:y2, x1:x2] = expected[y1:y2, x1:x2] * (1 - alpha) + back * alpha
    # the engine truncates its float samples to 8 bits before resizing, the PNG above rounds: 1/255 apart at most
    assert np.abs(got - expected.round()).max() <= 2
    assert (got[20:40, 70:90] != original[20:40, 70:90]).any()  # the masked part was repainted


def test_inpaint_full_res_false_keeps_the_whole_image_path(files, tmp_path) -> None:
    compiled = compile_a1111("img2img", _payload(width=64, height=64, inpaint_full_res=False),
                             default_checkpoint=None, input_images=["init.png"], mask_image="mask.png")
    assert "area" not in compiled.graph and compiled.graph["overlay0"]["class_type"] == "ImageCompositeMasked"
    # A1111's API default is "Only masked": a payload without the field crops
    compiled = compile_a1111("img2img", _payload(width=64, height=64), default_checkpoint=None,
                             input_images=["init.png"], mask_image="mask.png")
    assert compiled.graph["area"]["inputs"]["padding"] == 0
    assert compiled.graph["overlay0"]["class_type"] == "InpaintAreaPasteA1111" and "resized" not in compiled.graph


def test_a1111_reads_the_mask_as_its_create_binary_mask_and_sees_a_blank_one() -> None:
    """The server turns an A1111 mask into the grey mask A1111 reads, and checks it before "Only masked": A1111
    falls back to whole-picture img2img on a blank mask."""
    from sdfleet.engine.a1111_fields import binary_mask, mask_is_blank

    # a colour mask counts by luminance, not by one channel (pure red is 76 of 255)
    assert np.asarray(binary_mask(Image.new("RGB", (4, 4), (255, 0, 0)))).max() == 76
    # an RGBA mask with transparency is its alpha, thresholded at > 128, whatever the colour
    rgba = Image.new("RGBA", (4, 1), (255, 255, 255, 0))
    for x, alpha in enumerate((0, 128, 129, 255)):
        rgba.putpixel((x, 0), (0, 0, 0, alpha))
    assert np.asarray(binary_mask(rgba)).tolist() == [[0, 0, 255, 255]]
    # an opaque RGBA mask is its luminance, not rounded (A1111 rounds only the alpha path)
    assert np.asarray(binary_mask(Image.new("RGBA", (2, 2), (100, 100, 100, 255)))).max() == 100
    black, white = Image.new("L", (8, 8), 0), Image.new("L", (8, 8), 255)
    assert mask_is_blank(black, inverted=False) and not mask_is_blank(white, inverted=False)
    assert mask_is_blank(white, inverted=True) and not mask_is_blank(black, inverted=True)
    dot = black.copy()
    dot.putpixel((3, 4), 1)
    assert not mask_is_blank(dot, inverted=False)
