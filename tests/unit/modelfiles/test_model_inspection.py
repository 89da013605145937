"""inspect_model_file: hashes, precision, metadata, and a clear refusal for anything else."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sdfleet.modelfiles.errors import ModelFileError
from sdfleet.modelfiles.inspect import inspect_model_file
from sdfleet.modelfiles.types import ENGINE_FOLDERS, ModelType, engine_folder, parse_model_type

SD1_LORA = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": (),
}


def _refused(path: Path, declared: str) -> ModelFileError:
    with pytest.raises(ModelFileError) as caught:
        inspect_model_file(path, declared_type=declared)
    return caught.value


def test_lora_inspection_reports_hashes_size_precision_and_metadata(write_model: Callable[..., Path]) -> None:
    path = write_model(SD1_LORA, metadata={"ss_network_dim": "4", "ss_output_name": "cat"})

    inspection = inspect_model_file(path, declared_type="Lora")

    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert inspection.sha256 == expected
    assert inspection.short_hash == expected[:10]
    assert inspection.size == path.stat().st_size
    assert (inspection.format, inspection.model_type, inspection.architecture) == ("safetensors", ModelType.LORA, "sd1")
    assert (inspection.precision, inspection.tensor_count) == ("fp16", 3)
    assert inspection.metadata == {"ss_network_dim": "4", "ss_output_name": "cat"}


def test_precision_is_dominant_dtype_or_mixed(write_model: Callable[..., Path]) -> None:
    shapes = {"emb_params": (2, 768), "step": (1,)}
    bf16 = write_model({"emb_params": (2, 768)}, dtype="BF16")
    assert inspect_model_file(bf16, declared_type="embeddings").precision == "bf16"
    with_int = write_model(shapes, dtype="F32", dtypes={"step": "I64"})
    assert inspect_model_file(with_int, declared_type="embeddings").precision == "fp32"
    halves = write_model({"clip_l": (2, 768), "clip_g": (2, 1280)}, dtypes={"clip_g": "F32"})
    assert inspect_model_file(halves, declared_type="embeddings").precision == "mixed"


def test_wrong_declared_type_names_both(write_model: Callable[..., Path]) -> None:
    error = _refused(write_model(SD1_LORA), "Stable-diffusion")
    assert error.code == "wrong_type"
    assert "'Stable-diffusion'" in error.message and "'Lora'" in error.message


def test_unknown_type(write_model: Callable[..., Path]) -> None:
    error = _refused(write_model(SD1_LORA), "Hypernetwork")
    assert error.code == "unknown_type" and "'Hypernetwork'" in error.message and "'Lora'" in error.message


def test_safetensors_of_no_known_model(write_model: Callable[..., Path]) -> None:
    error = _refused(write_model({"lm_head.weight": (10, 4), "wte.weight": (10, 4)}), "Lora")
    assert error.code == "not_a_model" and "lm_head.weight" in error.message


def test_text_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "readme.safetensors"
    path.write_text("this is not a model, just some words in a file\n")
    assert _refused(path, "Lora").code == "not_a_model"
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert _refused(empty, "Lora").code == "not_a_model"


def test_pickle_formats_are_refused_with_a_hint(tmp_path: Path) -> None:
    zipped = tmp_path / "model.ckpt"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19.")
    for path in (zipped, legacy):
        error = _refused(path, "Stable-diffusion")
        assert error.code == "unsupported_format" and "converted to safetensors" in error.message


def test_lying_header_is_corrupt(write_model: Callable[..., Path]) -> None:
    path = write_model(SD1_LORA)
    path.write_bytes(path.read_bytes()[:-2])
    assert _refused(path, "Lora").code == "corrupt_header"


def test_type_names_and_engine_folders() -> None:
    assert parse_model_type("Stable-diffusion") is ModelType.CHECKPOINT
    assert engine_folder(ModelType.UPSCALER) == "upscale_models"
    assert engine_folder(ModelType.CHECKPOINT) == "checkpoints"
    assert set(ENGINE_FOLDERS) == set(ModelType)
    assert [t.value for t in ModelType] == ["Stable-diffusion", "Lora", "VAE", "ControlNet", "embeddings", "upscaler",
                                            "diffusion_models", "text_encoders"]


UNET_ONLY = {"model.diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3),
             "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (32, 2048),
             "model.diffusion_model.label_emb.0.0.weight": (64, 2816)}
CLIP_G = {"text_model.embeddings.token_embedding.weight": (49408, 1280),
          "text_model.encoder.layers.0.self_attn.q_proj.weight": (1280, 1280), "text_projection.weight": (1280, 1280)}
CLIP_L = {"embeddings.token_embedding.weight": (49408, 768), "encoder.layers.0.self_attn.q_proj.weight": (768, 768)}


def test_component_files_are_diffusion_models_and_text_encoders(write_model: Callable[..., Path]) -> None:
    unet = write_model(UNET_ONLY)
    assert inspect_model_file(unet, declared_type="diffusion_models").architecture == "sdxl"
    assert inspect_model_file(unet, declared_type="Stable-diffusion").model_type.value == "Stable-diffusion"
    assert inspect_model_file(write_model(CLIP_G), declared_type="text_encoders").architecture == "sdxl"
    assert inspect_model_file(write_model(CLIP_L), declared_type="text_encoders").architecture == "sd1"
    whole = write_model({**UNET_ONLY, "first_stage_model.decoder.conv_out.weight": (3, 8, 3, 3),
                         "first_stage_model.encoder.conv_out.weight": (8, 8, 3, 3)})
    assert _refused(whole, "diffusion_models").code == "wrong_type", "a whole checkpoint is not a UNet file"
    assert _refused(write_model(CLIP_L), "Stable-diffusion").code == "wrong_type"
    bare = write_model({k.removeprefix("model.diffusion_model."): v for k, v in UNET_ONLY.items()}
                       | {"out.2.weight": (4, 32, 3, 3)})
    assert inspect_model_file(bare, declared_type="diffusion_models").architecture == "sdxl"
