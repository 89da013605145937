"""A1111's inpainting_fill 2 (latent noise) and 3 (latent nothing), against A1111's formula written out here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sdfleet.engine.a1111 import compile_a1111
from sdfleet.engine.executor import Engine
from sdfleet.engine.nodes.inpaint_a1111 import inpaint_fill_a1111


def _a1111_latmask(mask: np.ndarray, width: int, height: int) -> torch.Tensor:
    """processing.py: latmask = init_mask.convert('RGB').resize((w, h)) / 255, np.around, first channel."""
    latmask = np.moveaxis(np.array(Image.fromarray(mask).convert("RGB").resize((width, height)),
                                   dtype=np.float32), 2, 0) / 255
    return torch.from_numpy(np.around(latmask[0]))


@pytest.mark.parametrize("fill", ["latent noise", "latent nothing"])
def test_fill_matches_a1111(fill) -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:50, 20:60] = 255
    mask[30:34, :] = 128
    latent = torch.from_numpy(rng.standard_normal((2, 4, 8, 8)).astype(np.float32))
    (out,) = inpaint_fill_a1111(None, samples={"samples": latent}, mask=torch.from_numpy(mask / 255.0)[None],
                                fill=fill, seed=40)
    m = _a1111_latmask(mask, 8, 8)
    noise = torch.stack([torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(40 + i)) for i in range(2)])
    expected = latent * (1 - m) + (noise * m if fill == "latent noise" else 0)
    assert torch.allclose(out["samples"], expected, atol=1e-6)
    assert 0 < m.sum() < 64


def test_inpainting_fill_2_runs_with_a_batch(files, tmp_path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    files.images.update({"init.png": tmp_path / "init.png", "mask.png": tmp_path / "mask.png"})
    compiled = compile_a1111("img2img", {
        "prompt": "a cat", "seed": 5, "steps": 3, "width": 64, "height": 64, "batch_size": 2, "inpainting_fill": 2,
        "denoising_strength": 0.8, "mask_blur": 0, "override_settings": {"sd_model_checkpoint": "sd1.safetensors"}},
        default_checkpoint=None, input_images=["init.png"], mask_image="mask.png")
    graph = compiled.graph
    assert graph["filled"]["inputs"]["samples"] == ["plain_batch", 0] and graph["latent"]["class_type"] == \
        "SetLatentNoiseMask"
    images = Engine().run(graph, files=files).images
    assert len(images) == 2 and images[0].png != images[1].png


def test_prefill_takes_the_surroundings_colours_and_keeps_the_rest() -> None:
    """A1111's masking.fill: unmasked pixels are kept exactly; masked ones become the blurred colours around them
    (a red left half fills a masked right half with red, not with the blue it had)."""
    from sdfleet.engine.nodes.inpaint_a1111 import inpaint_prefill_a1111

    image = np.zeros((1, 32, 64, 3), dtype=np.float32)
    image[0, :, :32, 0] = 1.0  # red left half
    image[0, :, 32:, 2] = 1.0  # blue right half, masked
    mask = np.zeros((1, 32, 64), dtype=np.float32)
    mask[0, :, 32:] = 1.0
    (out,) = inpaint_prefill_a1111(None, image=torch.from_numpy(image), mask=torch.from_numpy(mask))
    out = out.numpy()[0]
    assert np.array_equal(out[:, :32], image[0, :, :32])
    right = out[:, 32:]
    assert right[..., 0].min() > 0.9 and right[..., 2].max() < 0.05
    # a mask of another size is resized to the image's (A1111 fills with the mask at the image's size)
    (half,) = inpaint_prefill_a1111(None, image=torch.from_numpy(image), mask=torch.from_numpy(mask[:, ::2, ::2]))
    half = half.numpy()[0]
    assert half.shape == out.shape and np.array_equal(half[:, :28], out[:, :28])  # Lanczos rings at the edge only
    assert half[:, 36:, 0].min() > 0.85 and half[:, 36:, 2].max() < 0.15


def test_fill_0_prefills_then_encodes_with_a_noise_mask() -> None:
    compiled = compile_a1111("img2img", {
        "prompt": "a cat", "steps": 3, "width": 64, "height": 64, "mask_blur": 4, "inpaint_full_res": False,
        "override_settings": {"sd_model_checkpoint": "sd1.safetensors"}},
        default_checkpoint=None, input_images=["init.png"], mask_image="mask.png")
    graph = compiled.graph
    assert graph["prefilled"]["inputs"] == {"image": ["resized", 0], "mask": ["mask_blurred", 0]}
    assert graph["plain"]["inputs"]["pixels"] == ["prefilled", 0]
    assert graph["latent"]["class_type"] == "SetLatentNoiseMask"
    original = compile_a1111("img2img", {
        "prompt": "a cat", "steps": 3, "width": 64, "height": 64, "inpainting_fill": 1, "inpaint_full_res": False,
        "override_settings": {"sd_model_checkpoint": "sd1.safetensors"}},
        default_checkpoint=None, input_images=["init.png"], mask_image="mask.png").graph
    assert "prefilled" not in original  # 1 "original" encodes the image as it is
