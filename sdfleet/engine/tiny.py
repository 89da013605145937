"""Tiny random Stable Diffusion pipelines and LoRAs for tests and the demo, deterministic by seed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from sdfleet.engine.tensor_file import save_safetensors
from sdfleet.engine.tokenizers import load_byte_tokenizer

#: Text encoder widths; SDXL's two encoders must differ so the single-file loader tells them apart.
SD1_TEXT_WIDTH = 32
SD2_TEXT_WIDTH = 64
SDXL_TEXT_WIDTH = 32
SDXL_TEXT_WIDTH_2 = 64
SDXL_PROJECTION_DIM = 32
SDXL_TIME_EMBED_DIM = 8

_SCHEDULER_BASE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator inside the block without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _realistic_layer_norms(text_encoder: torch.nn.Module, *, seed: int) -> torch.nn.Module:
    """Give a text encoder's layer norms the non-trivial scale and shift trained ones have.

    Fresh LayerNorms (weight 1, bias 0) make the last hidden state's mean zero up to rounding, which
    A1111's emphasis divides by; a real CLIP's final norm has a bias. Uses its own generator, so the
    other weights stay what the seed gave before."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in text_encoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.2 + 0.2 * torch.randn(module.bias.shape, generator=generator))
    return text_encoder


def tiny_vae(*, scaling_factor: float = 0.18215) -> AutoencoderKL:
    """A 4-level VAE with SD's 8x scale factor and a few thousand parameters."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
        scaling_factor=scaling_factor,
    )


def _text_config(*, width: int, hidden_act: str, projection_dim: int | None = None) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=514,
        hidden_size=width,
        intermediate_size=width + 5,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=hidden_act,
        projection_dim=projection_dim or width,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def _sd_unet(*, cross_attention_dim: int, linear_projection: bool) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        use_linear_projection=linear_projection,
    )


def _sd_pipeline(*, seed: int, text_width: int, hidden_act: str, linear_projection: bool, prediction_type: str,
                 pad_token: str | None) -> StableDiffusionPipeline:
    with _seeded(seed):
        unet = _sd_unet(cross_attention_dim=text_width, linear_projection=linear_projection)
        vae = tiny_vae()
        text_encoder = CLIPTextModel(_text_config(width=text_width, hidden_act=hidden_act))
    _realistic_layer_norms(text_encoder, seed=seed)
    scheduler = EulerDiscreteScheduler(**_SCHEDULER_BASE, prediction_type=prediction_type)
    tokenizer = load_byte_tokenizer(pad_token=pad_token) if pad_token else load_byte_tokenizer()
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_sd1_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """A tiny random SD 1.x pipeline (epsilon prediction, CLIP-L style text encoder)."""
    return _sd_pipeline(seed=seed, text_width=SD1_TEXT_WIDTH, hidden_act="quick_gelu", linear_projection=False,
                        prediction_type="epsilon", pad_token=None)


def tiny_sd2_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """A tiny random SD 2.x pipeline (v-prediction, OpenCLIP style text encoder, linear projections)."""
    return _sd_pipeline(seed=seed, text_width=SD2_TEXT_WIDTH, hidden_act="gelu", linear_projection=True,
                        prediction_type="v_prediction", pad_token="!")


def _sdxl_unet(*, cross_attention_dim: int, time_ids: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 2),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=time_ids * SDXL_TIME_EMBED_DIM + SDXL_PROJECTION_DIM,
    )


def tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """A tiny random SDXL base pipeline: two text encoders and `text_time` added conditioning."""
    with _seeded(seed):
        unet = _sdxl_unet(cross_attention_dim=SDXL_TEXT_WIDTH + SDXL_TEXT_WIDTH_2, time_ids=6)
        vae = tiny_vae(scaling_factor=0.13025)
        text_encoder = CLIPTextModel(_text_config(width=SDXL_TEXT_WIDTH, hidden_act="quick_gelu"))
        text_encoder_2 = CLIPTextModelWithProjection(
            _text_config(
                width=SDXL_TEXT_WIDTH_2,
                hidden_act="gelu",
                projection_dim=SDXL_PROJECTION_DIM,
            )
        )
    _realistic_layer_norms(text_encoder, seed=seed)
    _realistic_layer_norms(text_encoder_2, seed=seed + 1)
    scheduler = EulerDiscreteScheduler(**_SCHEDULER_BASE, prediction_type="epsilon")
    return StableDiffusionXLPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=load_byte_tokenizer(),
        tokenizer_2=load_byte_tokenizer(pad_token="!"),
        unet=unet.eval(),
        scheduler=scheduler,
    )


def tiny_sdxl_refiner_pipeline(seed: int = 0) -> StableDiffusionXLImg2ImgPipeline:
    """A tiny random SDXL refiner pipeline: only the OpenCLIP encoder, aesthetic-score time ids."""
    with _seeded(seed):
        unet = _sdxl_unet(cross_attention_dim=SDXL_TEXT_WIDTH_2, time_ids=5)
        vae = tiny_vae(scaling_factor=0.13025)
        text_encoder_2 = CLIPTextModelWithProjection(
            _text_config(
                width=SDXL_TEXT_WIDTH_2,
                hidden_act="gelu",
                projection_dim=SDXL_PROJECTION_DIM,
            )
        )
    _realistic_layer_norms(text_encoder_2, seed=seed + 1)
    scheduler = EulerDiscreteScheduler(**_SCHEDULER_BASE, prediction_type="epsilon")
    return StableDiffusionXLImg2ImgPipeline(
        vae=vae.eval(),
        text_encoder=None,
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=None,
        tokenizer_2=load_byte_tokenizer(pad_token="!"),
        unet=unet.eval(),
        scheduler=scheduler,
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
    )


_UNET_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
_TEXT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _lora_pair(
    module: torch.nn.Linear, *, rank: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    down = torch.randn(rank, module.in_features, generator=generator) / module.in_features**0.5
    up = torch.randn(module.out_features, rank, generator=generator) * 0.5
    return down, up


def _text_lora_modules(
    text_encoder: torch.nn.Module,
) -> Iterator[tuple[str, torch.nn.Linear]]:
    """Yield (kohya name, module) for the attention projections of a CLIP text encoder."""
    for name, module in text_encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in _TEXT_LORA_TARGETS:
            # transformers 5 drops the `text_model.` prefix from CLIPTextModel; kohya names keep it.
            full = name if name.startswith("text_model.") else f"text_model.{name}"
            yield full.replace(".", "_"), module


def write_tiny_lora(pipeline: StableDiffusionPipeline, path: Path, *, seed: int = 0, rank: int = 4) -> Path:
    """Write a random kohya/A1111-format LoRA (`lora_unet_…`, `lora_te_…`) for `pipeline` to `path`."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}

    def add(prefix: str, name: str, module: torch.nn.Linear) -> None:
        down, up = _lora_pair(module, rank=rank, generator=generator)
        key = f"{prefix}_{name}"
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = torch.tensor(float(rank))

    for name, module in pipeline.unet.named_modules():
        is_attention = ".attn1." in name or ".attn2." in name
        if is_attention and isinstance(module, torch.nn.Linear) and name.endswith(_UNET_LORA_TARGETS):
            add("lora_unet", name.replace(".", "_"), module)
    is_xl = getattr(pipeline, "text_encoder_2", None) is not None
    encoders = [("lora_te1" if is_xl else "lora_te", pipeline.text_encoder)]
    if is_xl:
        encoders.append(("lora_te2", pipeline.text_encoder_2))
    for prefix, encoder in encoders:
        if encoder is not None:
            for name, module in _text_lora_modules(encoder):
                add(prefix, name, module)

    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(float(rank)),
        "ss_base_model_version": "sdxl_base_v1-0" if is_xl else "sd_v1",
        "ss_output_name": path.stem,
        "ss_seed": str(seed),
        "ss_training_comment": "sdfleet tiny random LoRA",
        "ss_tag_frequency": json.dumps({}),
    }
    save_safetensors(tensors, path, metadata=metadata)
    return path


def tiny_tokenizer() -> CLIPTokenizer:
    """The 514-token byte-level tokenizer used by every tiny pipeline."""
    return load_byte_tokenizer()


#: SD 1.5 ControlNets' hint encoder widths (`control_v11p_sd15_*`): three stride-2 stages, 8x down to the latent.
SD15_HINT_CHANNELS = (16, 32, 96, 256)


def tiny_controlnet(unet: UNet2DConditionModel, *, seed: int = 0) -> ControlNetModel:
    """A random ControlNet of the SD 1.5 ControlNet architecture, sized to `unet` (the tiny UNets).

    diffusers starts the output convolutions at zero (a ControlNet before training changes nothing); here they get
    random weights too, so the control visibly changes the image, as a trained one does."""
    model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=SD15_HINT_CHANNELS)
    generator = torch.Generator().manual_seed(seed + 7)
    zeroed = ("controlnet_down_blocks.", "controlnet_mid_block.", "controlnet_cond_embedding.conv_out.")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(zeroed):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    return model.eval()
