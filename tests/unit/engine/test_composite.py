"""ImageCompositeMasked against a direct numpy blend, and A1111 inpainting keeping the original pixels
outside the mask (A1111's apply_overlay) on the tiny SD1 model."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from sdfleet.engine.a1111 import compile_a1111
from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles
from sdfleet.engine.nodes.composite import composite_masked


def test_composite_matches_a_numpy_blend_with_offset_clipping_and_batches():
    rng = np.random.default_rng(0)
    destination = rng.random((1, 8, 10, 3), dtype=np.float32)
    source = rng.random((2, 4, 4, 3), dtype=np.float32)
    mask = np.zeros((1, 4, 4), dtype=np.float32)
    mask[:, :, 2:] = 1.0
    mask[:, 0, 0] = 0.25
    got = composite_masked(torch.from_numpy(destination), torch.from_numpy(source), x=8, y=5,
                           mask=torch.from_numpy(mask)).numpy()
    expected = np.repeat(destination, 2, axis=0)
    rows, cols = slice(5, 8), slice(8, 10)  # the source hangs over the bottom-right edge: only 3×2 lands
    alpha = mask[:, :3, :2, None]
    expected[:, rows, cols] = source[:, :3, :2] * alpha + expected[:, rows, cols] * (1 - alpha)
    assert got.shape == (2, 8, 10, 3)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    whole = composite_masked(torch.from_numpy(destination), torch.from_numpy(source[:1]), x=0, y=0,
                             resize_source=True).numpy()
    assert whole.shape == destination.shape and not np.allclose(whole, destination)
    outside = composite_masked(torch.from_numpy(destination), torch.from_numpy(source), x=20, y=0).numpy()
    np.testing.assert_array_equal(outside, np.repeat(destination, 2, axis=0))


@pytest.mark.parametrize("invert", [False, True], ids=["mask", "inverted-mask"])
def test_inpainting_keeps_the_original_outside_the_mask(files: DictModelFiles, tmp_path, invert) -> None:
    rng = np.random.default_rng(2)
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    original = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(original).save(init)
    mask_pixels = np.zeros((64, 64), dtype=np.uint8)
    mask_pixels[:, 40:] = 255
    Image.fromarray(mask_pixels).save(mask)
    files.images.update({"init.png": init, "mask.png": mask})
    compiled = compile_a1111("img2img", {
        "prompt": "a cat", "seed": 5, "steps": 3, "width": 64, "height": 64, "denoising_strength": 0.9,
        "mask_blur": 2, "inpainting_mask_invert": int(invert), "batch_size": 2,
        "override_settings": {"sd_model_checkpoint": "sd1.safetensors"},
    }, default_checkpoint=None, input_images=["init.png"], mask_image="mask.png")
    assert compiled.graph["overlay0"]["inputs"]["mask"] == ["mask_blurred", 0]
    result = Engine().run(compiled.graph, files=files)
    assert len(result.images) == 2
    for image in result.images:
        pixels = np.asarray(Image.open(io.BytesIO(image.png)).convert("RGB")).astype(int)
        kept, repainted = (slice(0, 32), slice(44, 64)) if not invert else (slice(48, 64), slice(0, 36))
        assert np.abs(pixels[:, kept] - original[:, kept]).max() == 0, "outside the mask: the original pixels"
        assert np.abs(pixels[:, repainted] - original[:, repainted]).mean() > 10, "inside: repainted"


def test_whole_picture_inpainting_blends_through_the_doubled_mask_as_a1111(files: DictModelFiles, tmp_path) -> None:
    """A1111's "Whole picture" overlay: mask_for_overlay = clip(2 × blurred mask); output = original × (1 − m2) +
    generated × m2, with the generated image taken before the overlay (same seed) and the blur written out here."""
    from sdfleet.engine.nodes.mask import blur_mask

    rng = np.random.default_rng(5)
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    original = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(original).save(init)
    mask_pixels = np.zeros((64, 64), dtype=np.uint8)
    mask_pixels[16:48, 24:56] = 255
    Image.fromarray(mask_pixels).save(mask)
    files.images.update({"init.png": init, "mask.png": mask})
    compiled = compile_a1111("img2img", {
        "prompt": "a cat", "seed": 9, "steps": 3, "width": 64, "height": 64, "denoising_strength": 0.8,
        "mask_blur": 4, "inpaint_full_res": False, "override_settings": {"sd_model_checkpoint": "sd1.safetensors"},
    }, default_checkpoint=None, input_images=["init.png"], mask_image="mask.png")
    graph = compiled.graph
    got = np.asarray(Image.open(io.BytesIO(Engine().run(graph, files=files).images[0].png)).convert("RGB"))
    graph["save0"]["inputs"]["images"] = ["decode0", 0]
    generated = np.asarray(Image.open(io.BytesIO(Engine().run(graph, files=files).images[0].png)).convert("RGB"))
    (blurred,) = blur_mask(None, mask=torch.from_numpy(mask_pixels / 255.0).float()[None], blur_radius=4)
    doubled = np.clip(2 * blurred[0].numpy(), 0, 1)[..., None]
    expected = original * (1 - doubled) + generated * doubled
    assert np.abs(got.astype(float) - expected).max() <= 1.0
    # the doubling shows: where the blurred mask is just above ½ the output is the generated image
    half = (blurred[0].numpy() > 0.5) & (blurred[0].numpy() < 0.6)
    assert half.any() and np.abs(got[half].astype(float) - generated[half]).max() <= 1.0
