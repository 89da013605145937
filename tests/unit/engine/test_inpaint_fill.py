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
