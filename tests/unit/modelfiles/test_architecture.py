"""Type and base detection from representative key sets with real (full-size) defining dims."""

from __future__ import annotations

import pytest

from sdfleet.modelfiles.architecture import detect_architecture
from sdfleet.modelfiles.types import ModelType

UNET = "model.diffusion_model."
ATTN2_K = "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


def _ldm_unet(context: int, *, adm: int | None = None) -> dict[str, tuple[int, ...]]:
    shapes = {
        f"{UNET}input_blocks.0.0.weight": (320, 4, 3, 3),
        f"{UNET}{ATTN2_K}": (320, context),
        f"{UNET}out.2.weight": (4, 320, 3, 3),
    }
    if adm is not None:
        shapes[f"{UNET}label_emb.0.0.weight"] = (1280, adm)
    return shapes


VAE_LDM = {
    "first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3),
    "first_stage_model.encoder.conv_out.weight": (8, 512, 3, 3),
    "first_stage_model.decoder.conv_out.weight": (3, 128, 3, 3),
}


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        (
            {**_ldm_unet(768), **VAE_LDM, "cond_stage_model.transformer.text_model.final_layer_norm.weight": (768,)},
            "sd1",
        ),
        ({**_ldm_unet(1024), "cond_stage_model.model.token_embedding.weight": (49408, 1024)}, "sd2"),
        (
            {
                **_ldm_unet(2048, adm=2816),
                "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": (768,),
                "conditioner.embedders.1.model.ln_final.weight": (1280,),
            },
            "sdxl",
        ),
        ({**_ldm_unet(1280, adm=2560), "conditioner.embedders.0.model.ln_final.weight": (1280,)}, "sdxl_refiner"),
        (_ldm_unet(768), "sd1"),
        (_ldm_unet(1024), "sd2"),
        (_ldm_unet(2048, adm=2816), "sdxl"),
        (_ldm_unet(1280, adm=2560), "sdxl_refiner"),
    ],
)
def test_ldm_checkpoints(shapes: dict[str, tuple[int, ...]], expected: str) -> None:
    detection = detect_architecture(shapes)
    assert detection is not None
    assert (detection.model_type, detection.architecture, detection.layout) == (ModelType.CHECKPOINT, expected, "ldm")


def test_diffusers_layout_checkpoint_with_prefixes() -> None:
    shapes = {
        "unet.conv_in.weight": (320, 4, 3, 3),
        "unet.time_embedding.linear_1.weight": (1280, 320),
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
        "unet.add_embedding.linear_1.weight": (1280, 2816),
        "text_encoder.text_model.final_layer_norm.weight": (768,),
        "text_encoder_2.text_model.final_layer_norm.weight": (1280,),
    }
    detection = detect_architecture(shapes)
    assert detection is not None
    assert (detection.model_type, detection.architecture, detection.layout) == (
        ModelType.CHECKPOINT,
        "sdxl",
        "diffusers",
    )


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        (
            {
                "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (8, 768),
                "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 8),
                "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": (),
            },
            "sd1",
        ),
        (
            {
                "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (8, 1024),
                "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 8),
            },
            "sd2",
        ),
        (
            {
                "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (8, 2048),
                "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": (640, 8),
            },
            "sdxl",
        ),
        (
            {
                "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (8, 1024),
                "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": (1024, 8),
            },
            "sd2",
        ),
        (
            {
                "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (8, 768),
                "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (8, 1280),
            },
            "sdxl",
        ),
    ],
)
def test_kohya_loras_and_their_base(shapes: dict[str, tuple[int, ...]], expected: str) -> None:
    detection = detect_architecture(shapes)
    assert detection is not None
    assert (detection.model_type, detection.architecture, detection.layout) == (ModelType.LORA, expected, "kohya")


def test_peft_and_lycoris_loras() -> None:
    peft = {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 2048),
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": (320, 4),
    }
    loha = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w1_a": (320, 4),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w1_b": (4, 768),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": (),
    }
    assert detect_architecture(peft) == detect_architecture(peft)  # deterministic
    found_peft = detect_architecture(peft)
    found_loha = detect_architecture(loha)
    assert found_peft is not None and (found_peft.architecture, found_peft.layout) == ("sdxl", "peft")
    assert found_loha is not None and (found_loha.model_type, found_loha.architecture, found_loha.layout) == (
        ModelType.LORA,
        "sd1",
        "lycoris",
    )


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ({"control_model.input_hint_block.0.weight": (16, 3, 3, 3), f"control_model.{ATTN2_K}": (320, 768)}, "sd1"),
        ({"control_model.input_hint_block.0.weight": (16, 3, 3, 3), f"control_model.{ATTN2_K}": (320, 1024)}, "sd2"),
        (
            {
                "controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3),
                "add_embedding.linear_1.weight": (1280, 2816),
                "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
            },
            "sdxl",
        ),
    ],
)
def test_controlnets_and_their_base(shapes: dict[str, tuple[int, ...]], expected: str) -> None:
    detection = detect_architecture(shapes)
    assert detection is not None
    assert (detection.model_type, detection.architecture) == (ModelType.CONTROLNET, expected)


def test_checkpoint_with_controlnet_inside_is_a_controlnet() -> None:
    shapes = {**_ldm_unet(768), "control_model.input_hint_block.0.weight": (16, 3, 3, 3)}
    detection = detect_architecture(shapes)
    assert detection is not None and detection.model_type is ModelType.CONTROLNET


def test_standalone_vae() -> None:
    shapes = {k.removeprefix("first_stage_model."): v for k, v in VAE_LDM.items()}
    detection = detect_architecture(shapes)
    assert detection is not None
    assert (detection.model_type, detection.architecture, detection.layout) == (ModelType.VAE, "sd", "ldm")
    sixteen = {**shapes, "encoder.conv_out.weight": (32, 512, 3, 3)}
    other = detect_architecture(sixteen)
    assert other is not None and other.architecture == "vae"


@pytest.mark.parametrize(
    ("shapes", "expected", "layout"),
    [
        ({"emb_params": (2, 768)}, "sd1", "a1111"),
        ({"emb_params": (4, 1024)}, "sd2", "a1111"),
        ({"clip_l": (2, 768), "clip_g": (2, 1280)}, "sdxl", "sdxl"),
        ({"string_to_param.*": (3, 768)}, "sd1", "a1111_pt"),
        ({"my-style": (3, 1024)}, "sd2", "single_tensor"),
    ],
)
def test_embeddings(shapes: dict[str, tuple[int, ...]], expected: str, layout: str) -> None:
    detection = detect_architecture(shapes)
    assert detection is not None
    assert (detection.model_type, detection.architecture, detection.layout) == (ModelType.EMBEDDING, expected, layout)


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        (
            {
                "conv_first.weight": (64, 3, 3, 3),
                "body.0.rdb1.conv1.weight": (32, 64, 3, 3),
                "conv_last.weight": (3, 64, 3, 3),
            },
            "esrgan",
        ),
        ({"model.0.weight": (64, 3, 3, 3), "model.1.sub.0.RDB1.conv1.0.weight": (32, 64, 3, 3)}, "esrgan"),
        ({"conv_first.weight": (180, 3, 3, 3), "layers.0.residual_group.blocks.0.norm1.weight": (180,)}, "swinir"),
        ({"body.0.weight": (64, 3, 3, 3), "body.0.bias": (64,), "body.1.weight": (64,)}, "compact"),
    ],
)
def test_upscalers(shapes: dict[str, tuple[int, ...]], expected: str) -> None:
    detection = detect_architecture(shapes)
    assert detection is not None
    assert (detection.model_type, detection.architecture) == (ModelType.UPSCALER, expected)


@pytest.mark.parametrize(
    "shapes",
    [
        {"weight": (3, 3), "bias": (3,)},
        {"encoder.layer.0.attention.self.query.weight": (768, 768)},
        {"lm_head.weight": (50257, 768), "transformer.h.0.attn.c_attn.weight": (768, 2304)},
    ],
)
def test_other_tensors_are_no_known_model(shapes: dict[str, tuple[int, ...]]) -> None:
    assert detect_architecture(shapes) is None
