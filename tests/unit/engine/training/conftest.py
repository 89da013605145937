"""A tiny base checkpoint (A1111 single file) and a handful of 64² images, made once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sdfleet.engine.checkpoints import export_checkpoint
from sdfleet.engine.tiny import tiny_sd1_pipeline, tiny_sdxl_pipeline
from sdfleet.engine.training.base_model import load_base_model
from sdfleet.engine.training.config import TrainingConfig
from sdfleet.engine.training.data import ImageSet, TrainingItem
from sdfleet.engine.training.trainer import Trainer


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run fastest on one thread, and far faster than on two when the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("training-bases")
    return {"sd1": export_checkpoint(tiny_sd1_pipeline(0), root / "sd1.safetensors", family="sd1"),
            "sdxl": export_checkpoint(tiny_sdxl_pipeline(0), root / "sdxl.safetensors", family="sdxl")}


@pytest.fixture(scope="session")
def items(tmp_path_factory) -> list[TrainingItem]:
    """Four noisy images, one of them wide (its own bucket), with captions and repeats."""
    root = tmp_path_factory.mktemp("training-images")
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (64, 64), (80, 64), (128, 64)]
    found = []
    for i, (w, h) in enumerate(sizes):
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        found.append(TrainingItem(path, f"a photo of sks thing, number {i}", repeats=1 + i % 2))
    return found


def make_trainer(base_path: Path, items: list[TrainingItem], config: TrainingConfig) -> Trainer:
    base = load_base_model(base_path, device="cpu", dtype=torch.float32)
    images = ImageSet(items, resolution=config.resolution, enable_bucket=config.enable_bucket,
                      bucket_range=config.bucket_range)
    return Trainer(base, images, config, device="cpu")
