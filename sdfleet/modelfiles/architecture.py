"""Tell a model's type and base architecture from its tensor names and shapes alone.

Key structure decides first (which text encoders a file carries, which naming scheme it uses), the
defining dimensions second (cross-attention 768 → sd1, 1024 → sd2, 2048 → sdxl, 1280 → sdxl refiner),
so that tiny random test models, whose dims are not the real ones, are still recognised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sdfleet.modelfiles.types import ModelType

Shapes = Mapping[str, tuple[int, ...]]

SD1 = "sd1"
SD2 = "sd2"
SDXL = "sdxl"
SDXL_REFINER = "sdxl_refiner"
UNKNOWN = "unknown"

#: cross-attention (context) width of each UNet family
CONTEXT_DIMS = {768: SD1, 1024: SD2, 2048: SDXL, 1280: SDXL_REFINER}
#: hidden width of the single text encoder of the SD 1.x / 2.x families
TEXT_HIDDEN_DIMS = {768: SD1, 1024: SD2}
#: input width of SDXL's pooled-text + size embedding (label_emb / add_embedding)
ADM_DIMS = {2816: SDXL, 2560: SDXL_REFINER}
#: the most vectors a textual-inversion embedding can hold (a prompt's 77 tokens)
MAX_EMBEDDING_VECTORS = 77

_CONTEXT_KEY = re.compile(
    r"attn2[._](?:processor[._])?to_k(?:\.weight|\.lora_down\.weight|\.lora_A(?:\.default)?\.weight"
    r"|\.lora\.down\.weight|_lora\.down\.weight|\.hada_w1_b|\.hada_w2_b)$"
)
_TEXT_Q_KEY = re.compile(
    r"self_attn[._]q_proj(?:\.lora_down\.weight|\.lora_A(?:\.default)?\.weight|\.lora\.down\.weight"
    r"|_lora\.down\.weight)$"
)
_LORA_SUFFIX = re.compile(
    r"(?:\.lora_down\.weight|\.lora_up\.weight|\.lora_A(?:\.default)?\.weight|\.lora_B(?:\.default)?\.weight"
    r"|\.lora\.down\.weight|\.lora\.up\.weight|_lora\.down\.weight|_lora\.up\.weight"
    r"|\.hada_w[12]_[ab]|\.lokr_w[12](?:_[ab])?|\.alpha)$"
)


@dataclass(frozen=True)
class Detection:
    """What a set of tensors is: the model type, the base architecture it belongs to, and its key layout."""

    model_type: ModelType
    #: sd1 | sd2 | sdxl | sdxl_refiner | unknown; "sd" for a VAE; esrgan | swinir | compact for upscalers
    architecture: str
    #: ldm | diffusers | kohya | peft | lycoris | a1111 | basicsr | …
    layout: str


def detect_architecture(shapes: Shapes) -> Detection | None:
    """Return what the tensors are, or None when they match no known model type."""
    names = list(shapes)
    for detector in (
        _detect_lora,
        _detect_controlnet,
        _detect_checkpoint,
        _detect_vae,
        _detect_text_encoder,
        _detect_embedding,
        _detect_upscaler,
    ):
        found = detector(shapes, names)
        if found is not None:
            return found
    return None


def _any_prefix(names: Iterable[str], *prefixes: str) -> bool:
    return any(name.startswith(prefixes) for name in names)


def _first_dim(shapes: Shapes, pattern: re.Pattern[str], *, prefix: str = "") -> int | None:
    for name, shape in shapes.items():
        if name.startswith(prefix) and len(shape) == 2 and pattern.search(name):
            return shape[1]
    return None


def _context_family(shapes: Shapes, *, prefix: str = "") -> str | None:
    dim = _first_dim(shapes, _CONTEXT_KEY, prefix=prefix)
    return CONTEXT_DIMS.get(dim) if dim is not None else None


def _adm_family(shapes: Shapes) -> str | None:
    for name in (
        "model.diffusion_model.label_emb.0.0.weight",
        "label_emb.0.0.weight",
        "add_embedding.linear_1.weight",
        "unet.add_embedding.linear_1.weight",
        "control_model.label_emb.0.0.weight",
    ):
        shape = shapes.get(name)
        if shape is not None and len(shape) == 2:
            return ADM_DIMS.get(shape[1], SDXL)
    return None


# -- LoRA ----------------------------------------------------------------------------------------


def _detect_lora(shapes: Shapes, names: list[str]) -> Detection | None:
    lora_keys = [n for n in names if _LORA_SUFFIX.search(n)]
    if not lora_keys or len(lora_keys) * 2 < len(names):
        return None
    if not any(not n.endswith(".alpha") for n in lora_keys):
        return None
    if any(".hada_" in n or ".lokr_" in n for n in lora_keys):
        layout = "lycoris"
    elif _any_prefix(lora_keys, "lora_unet_", "lora_te_", "lora_te1_", "lora_te2_"):
        layout = "kohya"
    elif any(".lora_A" in n for n in lora_keys):
        layout = "peft"
    else:
        layout = "diffusers"
    return Detection(ModelType.LORA, _lora_base(shapes, lora_keys), layout)


def _lora_base(shapes: Shapes, names: list[str]) -> str:
    # 1. Structure: a second text encoder only exists in SDXL.
    if _any_prefix(names, "lora_te2_", "text_encoder_2.", "lora_te2.") or any(".add_embedding." in n for n in names):
        return SDXL
    # 2. Defining dims: cross-attention width, then the text encoder's width.
    family = _context_family(shapes)
    if family is not None:
        return family
    hidden = _first_dim(shapes, _TEXT_Q_KEY)
    if hidden in TEXT_HIDDEN_DIMS:
        return TEXT_HIDDEN_DIMS[hidden]
    # 3. Naming conventions: kohya names SD 1.x/2.x UNet modules the diffusers way, SDXL's the LDM way.
    if _any_prefix(names, "lora_unet_input_blocks_", "lora_unet_output_blocks_", "lora_unet_middle_block_"):
        return SDXL
    if _any_prefix(
        names,
        "lora_unet_down_blocks_",
        "lora_unet_up_blocks_",
        "lora_unet_mid_block_",
        "lora_te_",
        "unet.down_blocks.",
        "unet.up_blocks.",
        "text_encoder.",
    ):
        return SD1
    return UNKNOWN


# -- ControlNet ----------------------------------------------------------------------------------


def _detect_controlnet(shapes: Shapes, names: list[str]) -> Detection | None:
    if any(n.startswith(("control_model.input_hint_block.", "input_hint_block.")) for n in names):
        layout = "ldm"
    elif any(n.startswith("controlnet_cond_embedding.") for n in names):
        layout = "diffusers"
    else:
        return None
    # SDXL ControlNets always carry SDXL's size embedding; without it the base is the SD 1.x/2.x family.
    family = _adm_family(shapes) or _context_family(shapes) or SD1
    return Detection(ModelType.CONTROLNET, family, layout)


# -- Full checkpoints ----------------------------------------------------------------------------


def _detect_checkpoint(shapes: Shapes, names: list[str]) -> Detection | None:
    if _any_prefix(names, "model.diffusion_model.input_blocks."):
        return Detection(ModelType.CHECKPOINT, _ldm_checkpoint_family(shapes, names), "ldm")
    if _any_prefix(names, "input_blocks.") and _any_prefix(names, "output_blocks.", "out."):
        # a bare LDM UNet (ComfyUI's diffusion-model files): the size embedding, then the context width
        return Detection(ModelType.CHECKPOINT, _adm_family(shapes) or _context_family(shapes) or SD1, "ldm")
    unet_prefix = "unet." if _any_prefix(names, "unet.conv_in.") else ""
    if f"{unet_prefix}conv_in.weight" in shapes and _any_prefix(names, f"{unet_prefix}time_embedding."):
        return Detection(ModelType.CHECKPOINT, _diffusers_checkpoint_family(shapes, names, unet_prefix), "diffusers")
    return None


def _ldm_checkpoint_family(shapes: Shapes, names: list[str]) -> str:
    # 1. Structure: which text encoders the file carries.
    if _any_prefix(names, "conditioner.embedders.1."):
        return SDXL
    if _any_prefix(names, "conditioner.embedders.0.model."):
        return SDXL_REFINER
    if _any_prefix(names, "cond_stage_model.model."):
        return SD2
    if _any_prefix(names, "cond_stage_model.transformer."):
        return SD1
    # 2. Dims (a UNet-only file): SDXL's size embedding, then the cross-attention width.
    # SDXL UNets always carry the size embedding (label_emb); without it the family is SD 1.x/2.x.
    return _adm_family(shapes) or _context_family(shapes, prefix="model.diffusion_model.") or SD1


def _diffusers_checkpoint_family(shapes: Shapes, names: list[str], unet_prefix: str) -> str:
    has_te1 = _any_prefix(names, "text_encoder.")
    has_te2 = _any_prefix(names, "text_encoder_2.")
    if has_te2:
        return SDXL if has_te1 else SDXL_REFINER
    adm = _adm_family(shapes)
    if adm is not None:
        return adm
    family = _context_family(shapes, prefix=unet_prefix)
    if family is not None:
        return family
    hidden = shapes.get("text_encoder.text_model.embeddings.token_embedding.weight")
    if hidden is not None and len(hidden) == 2 and hidden[1] in TEXT_HIDDEN_DIMS:
        return TEXT_HIDDEN_DIMS[hidden[1]]
    # No size embedding and no second text encoder: the SD 1.x/2.x family.
    return SD1


# -- VAE -----------------------------------------------------------------------------------------


def _detect_vae(shapes: Shapes, names: list[str]) -> Detection | None:
    prefix = "first_stage_model." if _any_prefix(names, "first_stage_model.encoder.") else ""
    prefix = "vae." if _any_prefix(names, "vae.encoder.") else prefix
    has_decoder = f"{prefix}decoder.conv_out.weight" in shapes or f"{prefix}decoder.conv_in.weight" in shapes
    if not has_decoder:
        return None
    layout = "diffusers" if _any_prefix(names, f"{prefix}decoder.up_blocks.") else "ldm"
    conv_out = shapes.get(f"{prefix}encoder.conv_out.weight")
    # Diagonal-Gaussian encoders emit mean and log-variance: twice the latent channels.
    latent = conv_out[0] // 2 if conv_out else None
    return Detection(ModelType.VAE, "sd" if latent == 4 else "vae", layout)


# -- Text encoders alone --------------------------------------------------------------------------

#: a lone text encoder's width → the family it belongs to (CLIP-L: SD 1.x and SDXL's first encoder)
TEXT_ENCODER_WIDTHS = {768: SD1, 1024: SD2, 1280: SDXL}


def _detect_text_encoder(shapes: Shapes, names: list[str]) -> Detection | None:
    prefix = "text_model." if "text_model.embeddings.token_embedding.weight" in shapes else ""
    embedding = shapes.get(f"{prefix}embeddings.token_embedding.weight")
    if embedding is None or len(embedding) != 2 or not _any_prefix(names, f"{prefix}encoder.layers."):
        return None
    return Detection(ModelType.TEXT_ENCODER, TEXT_ENCODER_WIDTHS.get(embedding[1], UNKNOWN), "transformers")


def unet_only(shapes: Shapes) -> bool:
    """True for a file holding a UNet and nothing else (no VAE, no text encoder): a diffusion-model file."""
    names = list(shapes)
    return not _any_prefix(names, "first_stage_model.", "cond_stage_model.", "conditioner.", "vae.",
                           "text_encoder.", "text_encoder_2.")


def as_declared(detection: Detection, shapes: Shapes, declared: str) -> Detection:
    """A UNet-only file is detected as a checkpoint; declared as a diffusion model, it is one."""
    if (declared == ModelType.DIFFUSION_MODEL.value and detection.model_type is ModelType.CHECKPOINT
            and unet_only(shapes)):
        return Detection(ModelType.DIFFUSION_MODEL, detection.architecture, detection.layout)
    return detection


# -- Textual-inversion embeddings ----------------------------------------------------------------


def _detect_embedding(shapes: Shapes, names: list[str]) -> Detection | None:
    if "clip_g" in shapes and "clip_l" in shapes:
        return Detection(ModelType.EMBEDDING, SDXL, "sdxl")
    vectors = shapes.get("emb_params")
    layout = "a1111"
    if vectors is None:
        params = [n for n in names if n.startswith("string_to_param.")]
        if len(params) == 1:
            vectors, layout = shapes[params[0]], "a1111_pt"
        elif len(names) == 1 and "." not in names[0]:
            # A1111 accepts any lone tensor as an embedding; a dotted name is a module weight instead.
            vectors, layout = shapes[names[0]], "single_tensor"
    if vectors is None or len(vectors) not in (1, 2) or len(names) > 2:
        return None
    if len(vectors) == 2 and vectors[0] > MAX_EMBEDDING_VECTORS:
        return None
    width = vectors[-1]
    return Detection(ModelType.EMBEDDING, SD2 if width == 1024 else SD1, layout)


# -- Upscalers -----------------------------------------------------------------------------------


def _detect_upscaler(shapes: Shapes, names: list[str]) -> Detection | None:
    stripped = {n.removeprefix("module.") for n in names}
    if "conv_first.weight" in stripped:
        if any(n.startswith("layers.0.residual_group.") for n in stripped):
            return Detection(ModelType.UPSCALER, "swinir", "basicsr")
        if any(n.startswith(("body.", "RRDB_trunk.")) for n in stripped):
            return Detection(ModelType.UPSCALER, "esrgan", "basicsr")
        return None
    if "model.0.weight" in stripped and any(n.startswith("model.1.sub.") for n in stripped):
        return Detection(ModelType.UPSCALER, "esrgan", "esrgan_old")
    body = [n for n in stripped if re.fullmatch(r"body\.\d+\.(weight|bias)", n)]
    if body and len(body) == len(stripped):
        return Detection(ModelType.UPSCALER, "compact", "realesrgan")
    return None
