"""The base model a LoRA is trained on, loaded fresh (the inference cache's modules are never trained)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

TRAINABLE_FAMILIES = ("sd1", "sd2", "sdxl")


class UnsupportedBaseModel(ValueError):
    """The checkpoint is of a family the trainer does not train (e.g. an SDXL refiner)."""


@dataclass
class BaseModel:
    """Components of a base checkpoint, on the training device."""

    family: str
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel | None
    tokenizer: CLIPTokenizer | None
    text_encoder_2: CLIPTextModelWithProjection | None
    tokenizer_2: CLIPTokenizer | None
    scheduler_config: dict[str, Any]

    @property
    def is_xl(self) -> bool:
        return self.text_encoder_2 is not None


def load_base_model(path: Path, *, device: str, dtype: torch.dtype) -> BaseModel:
    """Load a single-file (A1111) checkpoint or a diffusers folder; weights frozen, VAE in fp32 where SDXL's
    overflows in fp16."""
    path = Path(path)
    if path.is_dir():
        base = _load_folder(path, dtype=dtype)
    else:
        from sdfleet.engine.checkpoints import load_checkpoint

        parts = load_checkpoint(path, device="cpu", dtype=dtype)
        base = BaseModel(parts.family, parts.unet, parts.vae, parts.text_encoder, parts.tokenizer,
                         parts.text_encoder_2, parts.tokenizer_2, dict(parts.scheduler_config))
    if base.family not in TRAINABLE_FAMILIES:
        raise UnsupportedBaseModel(f"cannot train a LoRA on a {base.family} checkpoint; expected one of "
                                   f"{', '.join(TRAINABLE_FAMILIES)}")
    if dtype == torch.float16 and getattr(base.vae.config, "force_upcast", False):
        base.vae.to(dtype=torch.float32)
    for module in (base.unet, base.vae, base.text_encoder, base.text_encoder_2):
        if module is not None:
            module.requires_grad_(False).to(device)
    return base


def _load_folder(path: Path, *, dtype: torch.dtype) -> BaseModel:
    index = json.loads((path / "model_index.json").read_text())
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
    te = tok = te2 = tok2 = None
    if index.get("text_encoder", [None])[0]:
        te = CLIPTextModel.from_pretrained(path / "text_encoder", dtype=dtype)
        tok = CLIPTokenizer.from_pretrained(path / "tokenizer")
    if index.get("text_encoder_2", [None])[0]:
        te2 = CLIPTextModelWithProjection.from_pretrained(path / "text_encoder_2", dtype=dtype)
        tok2 = CLIPTokenizer.from_pretrained(path / "tokenizer_2")
    scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    if te2 is not None:
        family = "sdxl" if te is not None else "sdxl_refiner"
    else:
        family = "sd2" if scheduler_config.get("prediction_type") == "v_prediction" else "sd1"
    return BaseModel(family, unet, vae, te, tok, te2, tok2, scheduler_config)
