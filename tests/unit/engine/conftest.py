"""Tiny random models saved once per session, and ModelFiles pointing at them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from sdfleet.engine.files import DictModelFiles, ModelFile
from sdfleet.engine.tiny import tiny_sd1_pipeline, tiny_sdxl_pipeline, write_tiny_lora


def _folder_sha(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")):
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()


# The tiny models run faster on one thread than on two threads fighting over a busy 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    sd1 = tiny_sd1_pipeline(seed=0)
    sd1.save_pretrained(root / "sd1")
    tiny_sdxl_pipeline(seed=0).save_pretrained(root / "sdxl")
    write_tiny_lora(sd1, root / "style.safetensors", seed=3)
    return root


@pytest.fixture()
def files(model_dir: Path) -> DictModelFiles:
    f = DictModelFiles()
    f.add_model("checkpoints", "sd1.safetensors", ModelFile(model_dir / "sd1", _folder_sha(model_dir / "sd1")))
    f.add_model("checkpoints", "sdxl.safetensors", ModelFile(model_dir / "sdxl", _folder_sha(model_dir / "sdxl")))
    lora = model_dir / "style.safetensors"
    f.add_model("loras", "style.safetensors", ModelFile(lora, hashlib.sha256(lora.read_bytes()).hexdigest()))
    return f


def txt2img_graph(*, ckpt: str = "sd1.safetensors", seed: int = 42, steps: int = 4, cfg: float = 7.0,
                  sampler: str = "euler", scheduler: str = "normal", width: int = 64, height: int = 64,
                  batch: int = 1, prompt: str = "a red cat", negative: str = "blurry") -> dict:
    """The default ComfyUI txt2img workflow in API format."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "out", "images": ["8", 0]}},
    }
