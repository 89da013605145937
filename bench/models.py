"""Random-weight pipelines for the benchmarks: tiny ones for the CPU, real-architecture ones for a GPU."""

from __future__ import annotations

import json
from importlib import resources

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from sdfleet.engine.files import DictModelFiles, ModelFile
from sdfleet.engine.model_loader import Checkpoint
from sdfleet.engine.tiny import tiny_sd1_pipeline, tiny_sdxl_pipeline
from sdfleet.engine.tokenizers import load_byte_tokenizer


def _config(name: str) -> dict:
    return json.loads(resources.files("sdfleet.engine.configs").joinpath(name).read_text())


def _text(config: dict, cls: type) -> torch.nn.Module:
    fields = {k: v for k, v in config.items() if k not in ("architectures", "model_type", "torch_dtype",
                                                           "transformers_version", "_name_or_path")}
    return cls(CLIPTextConfig(**fields))


def real_architecture_pipeline(family: str, *, device: str, dtype: torch.dtype):
    """SD 1.5 or SDXL base architecture with random weights, built directly on `device`."""
    config = _config("sd15.json" if family == "sd1" else "sdxl_base.json")
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(config["unet"])
        vae = AutoencoderKL.from_config(config["vae"])
        te = _text(config["text_encoder"], CLIPTextModel)
        te2 = _text(config["text_encoder_2"], CLIPTextModelWithProjection) if family == "sdxl" else None
    # random weights make activations explode in fp16; shrink them so outputs stay finite
    with torch.no_grad():
        for module in (unet, vae, te, te2):
            if module is not None:
                for p in module.parameters():
                    p.mul_(0.5)
    modules = [m.to(dtype=dtype).eval() for m in (unet, vae, te) if m is not None]
    unet, vae, te = modules
    scheduler = EulerDiscreteScheduler.from_config(config["scheduler"], timestep_spacing="linspace")
    if family == "sdxl":
        return StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2.to(dtype=dtype).eval(),
                                         tokenizer=load_byte_tokenizer(), tokenizer_2=load_byte_tokenizer(
                                             pad_token="!"), unet=unet, scheduler=scheduler)
    return StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=load_byte_tokenizer(), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def tiny_pipeline(family: str, *, device: str, dtype: torch.dtype):
    """The tests' tiny random pipeline on `device`."""
    pipe = tiny_sd1_pipeline(seed=0) if family == "sd1" else tiny_sdxl_pipeline(seed=0)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    return pipe.to(device, dtype)


def share_with_engine(engine, pipe, *, family: str, name: str = "bench.safetensors") -> DictModelFiles:
    """Put the pipeline's own modules into the engine's model cache (no copy) and name them for graphs."""
    sha = f"{family}-bench".ljust(64, "0")
    ckpt = Checkpoint(family=family, unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder,
                      tokenizer=pipe.tokenizer, text_encoder_2=getattr(pipe, "text_encoder_2", None),
                      tokenizer_2=getattr(pipe, "tokenizer_2", None), scheduler_config=dict(pipe.scheduler.config))
    engine.models.get_or_load(f"checkpoint:{sha}", lambda: ckpt)
    engine.models.unpin_all()
    files = DictModelFiles()
    files.add_model("checkpoints", name, ModelFile(__import__("pathlib").Path("/nonexistent") / name, sha))
    return files
