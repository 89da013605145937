"""Tiny random pipelines and LoRAs: deterministic, fast, and in the shapes the engine expects."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from sdfleet.engine import tiny


def _image(pipe, prompt: str = "a cat", **kwargs) -> np.ndarray:
    return pipe(
        prompt,
        num_inference_steps=2,
        height=64,
        width=64,
        output_type="np",
        generator=torch.Generator().manual_seed(1),
        **kwargs,
    ).images


@pytest.mark.parametrize(
    "build",
    [
        tiny.tiny_sd1_pipeline,
        tiny.tiny_sd2_pipeline,
        tiny.tiny_sdxl_pipeline,
        tiny.tiny_sdxl_refiner_pipeline,
    ],
)
def test_pipelines_are_deterministic_by_seed_and_fast(build) -> None:
    started = time.perf_counter()
    first = build(seed=3)
    assert time.perf_counter() - started < 10.0  # 0.2 s measured: the bound only catches a pathological build
    same, other = build(seed=3).unet.state_dict(), build(seed=4).unet.state_dict()
    for name, tensor in first.unet.state_dict().items():
        assert torch.equal(tensor, same[name]), name
    assert not torch.equal(first.unet.conv_in.weight, other["conv_in.weight"])


def test_building_does_not_disturb_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny.tiny_sd1_pipeline()
    assert torch.equal(torch.rand(3), expected)


def test_sd1_generates_an_image() -> None:
    image = _image(tiny.tiny_sd1_pipeline())
    assert image.shape == (1, 64, 64, 3)
    assert np.isfinite(image).all()


def test_sd2_is_v_prediction_with_linear_projection() -> None:
    pipe = tiny.tiny_sd2_pipeline()
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.unet.config.use_linear_projection is True
    assert pipe.text_encoder.config.hidden_act == "gelu"
    assert _image(pipe).shape == (1, 64, 64, 3)


def test_sdxl_has_two_text_encoders_of_different_width() -> None:
    pipe = tiny.tiny_sdxl_pipeline()
    assert pipe.unet.config.addition_embed_type == "text_time"
    width_1, width_2 = pipe.text_encoder.config.hidden_size, pipe.text_encoder_2.config.hidden_size
    assert width_1 != width_2  # the single-file loader tells the encoders apart by width
    assert pipe.unet.config.cross_attention_dim == width_1 + width_2
    assert _image(pipe).shape == (1, 64, 64, 3)


def test_refiner_runs_img2img_with_aesthetic_score() -> None:
    pipe = tiny.tiny_sdxl_refiner_pipeline()
    assert pipe.text_encoder is None
    image = _image(pipe, image=torch.rand(1, 3, 64, 64), strength=0.6)
    assert image.shape == (1, 64, 64, 3)


def test_lora_is_kohya_format_with_trainer_metadata(tmp_path: Path) -> None:
    pipe = tiny.tiny_sd1_pipeline()
    path = tiny.write_tiny_lora(pipe, tmp_path / "loras" / "tiny.safetensors", seed=0)
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        metadata = handle.metadata()
        alpha = handle.get_tensor(next(k for k in keys if k.endswith(".alpha")))
    assert any(
        k.startswith("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.") for k in keys
    )
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in keys
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in keys)
    assert metadata["ss_network_dim"] == "4" and float(metadata["ss_network_alpha"]) == 4.0
    assert metadata["ss_base_model_version"] == "sd_v1"
    assert json.loads(metadata["ss_tag_frequency"]) == {}
    assert alpha.item() == 4.0


def test_lora_is_reproducible(tmp_path: Path) -> None:
    pipe = tiny.tiny_sd1_pipeline()
    first = tiny.write_tiny_lora(pipe, tmp_path / "a" / "lora.safetensors", seed=5).read_bytes()
    second = tiny.write_tiny_lora(pipe, tmp_path / "b" / "lora.safetensors", seed=5).read_bytes()
    third = tiny.write_tiny_lora(pipe, tmp_path / "c" / "lora.safetensors", seed=6).read_bytes()
    assert first == second
    assert first != third


@pytest.mark.parametrize("build", [tiny.tiny_sd1_pipeline, tiny.tiny_sdxl_pipeline])
def test_lora_loads_in_diffusers_and_changes_the_image(tmp_path: Path, build) -> None:
    pipe = build()
    base = _image(pipe)
    pipe.load_lora_weights(
        str(tiny.write_tiny_lora(pipe, tmp_path / "lora.safetensors")), adapter_name="tiny"
    )
    components = pipe.get_list_adapters()
    assert "unet" in components and "text_encoder" in components
    assert np.abs(_image(pipe) - base).mean() > 0.01
    pipe.set_adapters(["tiny"], adapter_weights=[0.0])
    assert np.array_equal(_image(pipe), base)
