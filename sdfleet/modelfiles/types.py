"""Model type names (the seed's / A1111's folder names) and the engine folder each maps to."""

from __future__ import annotations

from enum import StrEnum

from sdfleet.modelfiles.errors import ModelFileError


class ModelType(StrEnum):
    """A kind of model file, spelled as the seed and A1111 spell it."""

    #: a full checkpoint (UNet + VAE + text encoders)
    CHECKPOINT = "Stable-diffusion"
    #: a LoRA / LyCORIS adapter
    LORA = "Lora"
    #: a standalone VAE
    VAE = "VAE"
    #: a ControlNet
    CONTROLNET = "ControlNet"
    #: a textual-inversion embedding
    EMBEDDING = "embeddings"
    #: an ESRGAN-style image upscaler
    UPSCALER = "upscaler"
    #: a UNet alone (ComfyUI's UNETLoader)
    DIFFUSION_MODEL = "diffusion_models"
    #: a CLIP text encoder alone (ComfyUI's CLIPLoader / DualCLIPLoader)
    TEXT_ENCODER = "text_encoders"


#: the folder name the engine (ComfyUI's vocabulary) files each type under
ENGINE_FOLDERS: dict[ModelType, str] = {
    ModelType.CHECKPOINT: "checkpoints",
    ModelType.LORA: "loras",
    ModelType.VAE: "vae",
    ModelType.CONTROLNET: "controlnet",
    ModelType.EMBEDDING: "embeddings",
    ModelType.UPSCALER: "upscale_models",
    ModelType.DIFFUSION_MODEL: "diffusion_models",
    ModelType.TEXT_ENCODER: "text_encoders",
}


def parse_model_type(name: str) -> ModelType:
    """Return the ModelType spelled `name`, or raise `unknown_type` listing the accepted names."""
    try:
        return ModelType(name)
    except ValueError:
        accepted = ", ".join(repr(t.value) for t in ModelType)
        raise ModelFileError("unknown_type", f"model type must be one of {accepted}, got {name!r}") from None


def engine_folder(model_type: ModelType) -> str:
    """Return the engine folder name (`checkpoints`, `loras` …) for a model type."""
    return ENGINE_FOLDERS[model_type]
