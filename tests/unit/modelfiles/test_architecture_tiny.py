"""Detection of the project's tiny random models (cross-attention 32/64): key structure must decide."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
tiny = pytest.importorskip("sdfleet.engine.tiny")
ldm_keys = pytest.importorskip("sdfleet.engine.ldm_keys")

from sdfleet.modelfiles.architecture import detect_architecture  # noqa: E402
from sdfleet.modelfiles.inspect import inspect_model_file  # noqa: E402
from sdfleet.modelfiles.types import ModelType  # noqa: E402


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _single_file(pipe: object, *, clip: str | None, open_clip: str | None) -> dict[str, torch.Tensor]:
    unet = pipe.unet  # type: ignore[attr-defined]
    state = ldm_keys.unet_to_ldm(unet.state_dict(), layers_per_block=1, up_attention_blocks={0})
    state.update(ldm_keys.vae_to_ldm(pipe.vae.state_dict(), num_up_blocks=4))  # type: ignore[attr-defined]
    if clip is not None:
        state.update(ldm_keys.clip_to_ldm(pipe.text_encoder.state_dict(), prefix=clip))  # type: ignore[attr-defined]
    if open_clip is not None:
        encoder = getattr(pipe, "text_encoder_2", None) or pipe.text_encoder  # type: ignore[attr-defined]
        state.update(ldm_keys.open_clip_to_ldm(encoder.state_dict(), prefix=open_clip))
    return state


@pytest.fixture(scope="module")
def pipelines() -> dict[str, object]:
    return {
        "sd1": tiny.tiny_sd1_pipeline(),
        "sd2": tiny.tiny_sd2_pipeline(),
        "sdxl": tiny.tiny_sdxl_pipeline(),
        "sdxl_refiner": tiny.tiny_sdxl_refiner_pipeline(),
    }


@pytest.mark.parametrize(
    ("family", "clip", "open_clip"),
    [
        ("sd1", ldm_keys.SD1_CLIP_PREFIX, None),
        ("sd2", None, ldm_keys.SD2_OPEN_CLIP_PREFIX),
        ("sdxl", ldm_keys.SDXL_CLIP_PREFIX, ldm_keys.SDXL_OPEN_CLIP_PREFIX),
        ("sdxl_refiner", None, ldm_keys.REFINER_OPEN_CLIP_PREFIX),
    ],
)
def test_tiny_single_file_checkpoints(
    pipelines: dict[str, object], family: str, clip: str | None, open_clip: str | None
) -> None:
    state = _single_file(pipelines[family], clip=clip, open_clip=open_clip)
    detection = detect_architecture(_shapes(state))
    assert detection is not None
    assert (detection.model_type, detection.architecture, detection.layout) == (ModelType.CHECKPOINT, family, "ldm")


@pytest.mark.parametrize(
    ("family", "expected"),
    # A bare UNet carries no text encoder; the refiner's is told from the base only by full-size dims.
    [("sd1", "sd1"), ("sdxl", "sdxl"), ("sdxl_refiner", "sdxl")],
)
def test_tiny_diffusers_unets(pipelines: dict[str, object], family: str, expected: str) -> None:
    unet = pipelines[family].unet  # type: ignore[attr-defined]
    detection = detect_architecture(_shapes(unet.state_dict()))
    assert detection is not None
    assert (detection.model_type, detection.architecture, detection.layout) == (
        ModelType.CHECKPOINT,
        expected,
        "diffusers",
    )


def test_tiny_vae(pipelines: dict[str, object]) -> None:
    vae = pipelines["sd1"].vae  # type: ignore[attr-defined]
    diffusers = detect_architecture(_shapes(vae.state_dict()))
    ldm = detect_architecture(
        {
            k.removeprefix("first_stage_model."): v
            for k, v in _shapes(ldm_keys.vae_to_ldm(vae.state_dict(), num_up_blocks=4)).items()
        }
    )
    assert diffusers is not None and (diffusers.model_type, diffusers.architecture, diffusers.layout) == (
        ModelType.VAE,
        "sd",
        "diffusers",
    )
    assert ldm is not None and (ldm.model_type, ldm.architecture, ldm.layout) == (ModelType.VAE, "sd", "ldm")


def test_tiny_controlnet_from_unet(pipelines: dict[str, object]) -> None:
    from diffusers import ControlNetModel

    for family, expected in (("sd1", "sd1"), ("sdxl", "sdxl")):
        controlnet = ControlNetModel.from_unet(pipelines[family].unet)  # type: ignore[attr-defined]
        detection = detect_architecture(_shapes(controlnet.state_dict()))
        assert detection is not None
        assert (detection.model_type, detection.architecture, detection.layout) == (
            ModelType.CONTROLNET,
            expected,
            "diffusers",
        )


@pytest.mark.parametrize(("family", "expected"), [("sd1", "sd1"), ("sdxl", "sdxl")])
def test_tiny_kohya_lora_file_is_inspected(
    pipelines: dict[str, object], tmp_path: Path, family: str, expected: str
) -> None:
    path = tiny.write_tiny_lora(pipelines[family], tmp_path / f"{family}.safetensors")
    inspection = inspect_model_file(path, declared_type="Lora")
    assert (inspection.architecture, inspection.layout, inspection.precision) == (expected, "kohya", "fp32")
    assert inspection.metadata["ss_network_dim"] == "4"


def test_peft_lora_saved_the_diffusers_way(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = tiny.tiny_sd1_pipeline().unet  # its own copy: add_adapter changes the model
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_k", "to_q", "to_v", "to_out.0"])
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=layers, safe_serialization=True)

    inspection = inspect_model_file(tmp_path / "pytorch_lora_weights.safetensors", declared_type="Lora")

    assert (inspection.model_type, inspection.architecture, inspection.layout) == (ModelType.LORA, "sd1", "diffusers")
