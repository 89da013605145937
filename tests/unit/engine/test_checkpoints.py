"""A1111 single-file checkpoints: export, offline load through diffusers' converter, family detection."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.loaders.single_file_utils import infer_diffusers_model_type
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from sdfleet.engine import checkpoints, ldm_keys, tiny

BUILDERS = {
    "sd1": tiny.tiny_sd1_pipeline,
    "sd2": tiny.tiny_sd2_pipeline,
    "sdxl": tiny.tiny_sdxl_pipeline,
    "sdxl_refiner": tiny.tiny_sdxl_refiner_pipeline,
}
COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _assert_same_weights(source, loaded) -> None:
    for name in COMPONENTS:
        expected = getattr(source, name, None)
        actual = getattr(loaded, name)
        if expected is None:
            assert actual is None, name
            continue
        want, got = expected.state_dict(), actual.state_dict()
        assert want.keys() == got.keys(), name
        for key, tensor in want.items():
            assert torch.equal(tensor, got[key]), f"{name}.{key}"


def _image(pipe) -> np.ndarray:
    kwargs = {"num_inference_steps": 2, "height": 64, "width": 64, "output_type": "np"}
    return pipe("a red cat", generator=torch.Generator().manual_seed(7), **kwargs).images


def _pipeline(components: checkpoints.CheckpointComponents, scheduler):
    common = {"vae": components.vae, "unet": components.unet, "scheduler": scheduler}
    if components.family == "sdxl":
        return StableDiffusionXLPipeline(
            text_encoder=components.text_encoder,
            text_encoder_2=components.text_encoder_2,
            tokenizer=components.tokenizer,
            tokenizer_2=components.tokenizer_2,
            **common,
        )
    return StableDiffusionPipeline(
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **common,
    )


@pytest.mark.parametrize("family", list(BUILDERS))
def test_round_trip_is_bit_identical(tmp_path: Path, family: str) -> None:
    source = BUILDERS[family]()
    path = checkpoints.export_checkpoint(source, tmp_path / f"{family}.safetensors", family=family)
    loaded = checkpoints.load_checkpoint(path)
    assert loaded.family == family
    _assert_same_weights(source, loaded)
    assert loaded.scheduler_config["prediction_type"] == source.scheduler.config.prediction_type
    assert (loaded.text_encoder_2 is not None) == (family in ("sdxl", "sdxl_refiner"))
    assert (loaded.tokenizer is None) == (family == "sdxl_refiner")


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_round_trip_gives_the_same_image(tmp_path: Path, family: str) -> None:
    source = BUILDERS[family]()
    path = checkpoints.export_checkpoint(source, tmp_path / "model.safetensors", family=family)
    loaded = checkpoints.load_checkpoint(path)
    rebuilt = _pipeline(loaded, type(source.scheduler).from_config(loaded.scheduler_config))
    assert np.array_equal(_image(rebuilt), _image(source))


@pytest.mark.parametrize(
    ("family", "prefix"),
    [
        ("sd1", "cond_stage_model.transformer.text_model."),
        ("sd2", "cond_stage_model.model."),
        ("sdxl", "conditioner.embedders.1.model."),
        ("sdxl_refiner", "conditioner.embedders.0.model."),
    ],
)
def test_export_uses_the_ldm_layout(tmp_path: Path, family: str, prefix: str) -> None:
    path = checkpoints.export_checkpoint(BUILDERS[family](), tmp_path / "m.safetensors", family=family)
    keys = set(load_file(str(path)))
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in keys
    assert "first_stage_model.decoder.up.0.block.0.conv1.weight" in keys
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in keys
    assert any(k.startswith(prefix) for k in keys)
    assert not any(k.startswith(("down_blocks", "text_model", "encoder.")) for k in keys)
    assert checkpoints.detect_family(load_file(str(path))) == family


def test_family_detection_without_text_encoders_uses_context_width() -> None:
    state = {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(8, 1024)
    }
    assert checkpoints.detect_family(state) == "sd2"
    with pytest.raises(checkpoints.CheckpointError, match="cross-attention width 33"):
        checkpoints.detect_family({"model.diffusion_model.x.attn2.to_k.weight": torch.zeros(8, 33)})
    with pytest.raises(checkpoints.CheckpointError, match="no Stable Diffusion UNet"):
        checkpoints.detect_family({"foo": torch.zeros(1)})


def test_configs_can_come_from_the_caller_when_metadata_is_absent(tmp_path: Path) -> None:
    source = tiny.tiny_sd1_pipeline()
    exported = checkpoints.export_checkpoint(source, tmp_path / "with.safetensors", family="sd1")
    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(exported)), str(bare))  # an A1111 file as trainers write it: no sdfleet metadata
    configs = checkpoints.pipeline_configs(source, family="sd1")
    _assert_same_weights(source, checkpoints.load_checkpoint(bare, configs=configs))


def test_bare_file_falls_back_to_the_packaged_family_configs(tmp_path: Path, monkeypatch) -> None:
    source = tiny.tiny_sd2_pipeline()
    bare = tmp_path / "bare.safetensors"
    save_file(checkpoints.pipeline_to_ldm(source, family="sd2"), str(bare))
    asked = []

    def packaged(family: str) -> dict:
        asked.append(family)
        return checkpoints.pipeline_configs(source, family="sd2")

    monkeypatch.setattr(checkpoints, "packaged_configs", packaged)
    loaded = checkpoints.load_checkpoint(bare)
    assert asked == ["sd2"] and loaded.family == "sd2"
    _assert_same_weights(source, loaded)


def test_missing_weights_are_refused(tmp_path: Path) -> None:
    source = tiny.tiny_sd1_pipeline()
    state = checkpoints.pipeline_to_ldm(source, family="sd1")
    del state["model.diffusion_model.out.2.weight"]
    path = tmp_path / "broken.safetensors"
    save_file(state, str(path))
    configs = checkpoints.pipeline_configs(source, family="sd1")
    with pytest.raises(checkpoints.CheckpointError, match="lacks unet weights"):
        checkpoints.load_checkpoint(path, configs=configs)


def test_bad_inputs_name_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(checkpoints.CheckpointError, match="family must be one of"):
        checkpoints.export_checkpoint(tiny.tiny_sd1_pipeline(), tmp_path / "x.safetensors", family="sd3")
    with pytest.raises(checkpoints.CheckpointError, match="is not a file"):
        checkpoints.load_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(checkpoints.CheckpointError, match="not a readable safetensors file"):
        checkpoints.load_checkpoint(junk)


def test_export_casts_dtype_and_load_casts_back(tmp_path: Path) -> None:
    path = checkpoints.export_checkpoint(
        tiny.tiny_sd1_pipeline(), tmp_path / "half.safetensors", family="sd1", dtype=torch.float16
    )
    with safe_open(str(path), framework="pt") as handle:
        assert handle.get_tensor("model.diffusion_model.out.2.weight").dtype == torch.float16
    loaded = checkpoints.load_checkpoint(path, dtype=torch.float32)
    assert loaded.unet.dtype == torch.float32 and loaded.text_encoder.dtype == torch.float32


def test_standalone_vae_loads_from_ldm_keys_without_prefix(tmp_path: Path) -> None:
    source = tiny.tiny_sd1_pipeline()
    state = ldm_keys.vae_to_ldm(source.vae.state_dict(), num_up_blocks=4)
    path = tmp_path / "vae.safetensors"
    configs = checkpoints.pipeline_configs(source, family="sd1")
    metadata = {checkpoints.CONFIGS_METADATA_KEY: __import__("json").dumps(configs)}
    save_file(
        {k.removeprefix(ldm_keys.VAE_PREFIX): v for k, v in state.items()}, str(path), metadata=metadata
    )
    vae = checkpoints.load_vae(path)
    for key, tensor in source.vae.state_dict().items():
        assert torch.equal(tensor, vae.state_dict()[key]), key


@pytest.mark.parametrize(
    ("family", "diffusers_type", "unet_millions"),
    [
        ("sd1", "v1", 859.5),
        ("sd2", "v2", 865.9),
        ("sdxl", "xl_base", 2567.5),
        ("sdxl_refiner", "xl_refiner", 2259.5),
    ],
)
def test_packaged_configs_have_the_real_geometry(
    family: str, diffusers_type: str, unet_millions: float
) -> None:
    """Real-size models on the meta device: parameter counts, and diffusers' own detection of our LDM keys."""
    configs = checkpoints.packaged_configs(family)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(configs["unet"])
        vae = AutoencoderKL.from_config(configs["vae"])
        encoder = (
            CLIPTextModel(CLIPTextConfig(**configs["text_encoder"])) if "text_encoder" in configs else None
        )
        encoder_2 = (
            CLIPTextModelWithProjection(CLIPTextConfig(**configs["text_encoder_2"]))
            if "text_encoder_2" in configs
            else None
        )
    assert round(sum(p.numel() for p in unet.parameters()) / 1e6, 1) == unet_millions
    pipe = SimpleNamespace(unet=unet, vae=vae, text_encoder=encoder, text_encoder_2=encoder_2)
    state = checkpoints.pipeline_to_ldm(pipe, family=family)
    assert infer_diffusers_model_type(state) == diffusers_type
    assert checkpoints.detect_family(state) == family
    for name in ("tokenizer", "tokenizer_2"):
        if name in configs:
            assert configs[name]["kind"] == "clip"
