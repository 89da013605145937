"""A1111 single-file checkpoints: export from diffusers pipelines and load offline through diffusers."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from sdfleet.engine import ldm_keys
from sdfleet.engine.tensor_file import save_safetensors
from sdfleet.engine.tokenizers import EOS, byte_vocab, load_tokenizer

FAMILIES = ("sd1", "sd2", "sdxl", "sdxl_refiner")
#: The packaged diffusers configs of the real model each family was released as.
PACKAGED_CONFIGS = {"sd1": "sd15", "sd2": "sd21", "sdxl": "sdxl_base", "sdxl_refiner": "sdxl_refiner"}
CONFIGS_METADATA_KEY = "sdfleet.configs"
FAMILY_METADATA_KEY = "sdfleet.family"
_TEXT_ENCODER_PREFIXES = {
    "sd1": [("text_encoder", ldm_keys.SD1_CLIP_PREFIX, False)],
    "sd2": [("text_encoder", ldm_keys.SD2_OPEN_CLIP_PREFIX, True)],
    "sdxl": [
        ("text_encoder", ldm_keys.SDXL_CLIP_PREFIX, False),
        ("text_encoder_2", ldm_keys.SDXL_OPEN_CLIP_PREFIX, True),
    ],
    "sdxl_refiner": [("text_encoder_2", ldm_keys.REFINER_OPEN_CLIP_PREFIX, True)],
}
#: SD context (cross-attention) width per family, for files that carry no text encoder.
_CONTEXT_DIMS = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl_refiner"}


@dataclass
class CheckpointComponents:
    """The models of one loaded checkpoint, ready to build a diffusers pipeline from."""

    family: str  # "sd1" | "sd2" | "sdxl" | "sdxl_refiner"
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel | None  # None for sdxl_refiner
    tokenizer: CLIPTokenizer | None
    text_encoder_2: CLIPTextModelWithProjection | None  # SDXL only
    tokenizer_2: CLIPTokenizer | None
    scheduler_config: dict  # diffusers scheduler config incl. prediction_type


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, recognised or loaded."""


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise CheckpointError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return family


def _tokenizer_spec(tokenizer: CLIPTokenizer) -> dict[str, str]:
    kind = "bytes" if tokenizer.get_vocab() == byte_vocab() else "clip"
    if kind == "clip" and len(tokenizer) != 49408:
        raise CheckpointError(
            f"tokenizer must be the CLIP (49408) or byte (514) vocabulary, got {len(tokenizer)}"
        )
    return {"kind": kind, "pad_token": str(tokenizer.pad_token or EOS)}


def pipeline_configs(pipeline: DiffusionPipeline, *, family: str) -> dict[str, Any]:
    """The diffusers configs of a pipeline's components, in the schema of the packaged family configs."""
    configs: dict[str, Any] = {
        "family": _check_family(family),
        "unet": json.loads(pipeline.unet.to_json_string()),
        "vae": json.loads(pipeline.vae.to_json_string()),
        "scheduler": json.loads(pipeline.scheduler.to_json_string()),
    }
    for name, _, _ in _TEXT_ENCODER_PREFIXES[family]:
        encoder = getattr(pipeline, name)
        config = encoder.config.to_dict()
        config.pop("_name_or_path", None)
        configs[name] = config
        tokenizer_name = name.replace("text_encoder", "tokenizer")
        configs[tokenizer_name] = _tokenizer_spec(getattr(pipeline, tokenizer_name))
    return configs


def _uniform_layers(unet: UNet2DConditionModel) -> int:
    layers = unet.config.layers_per_block
    if isinstance(layers, int):
        return layers
    if len(set(layers)) != 1:
        raise CheckpointError(
            f"unet layers_per_block must be the same for every block in LDM layout, got {layers}"
        )
    return int(layers[0])


def pipeline_to_ldm(pipeline: DiffusionPipeline, *, family: str) -> dict[str, torch.Tensor]:
    """All weights of `pipeline` renamed to the A1111/LDM single-file layout of `family`."""
    unet = pipeline.unet
    up_attention = {i for i, block in enumerate(unet.up_blocks) if getattr(block, "attentions", None)}
    tensors = ldm_keys.unet_to_ldm(
        unet.state_dict(), layers_per_block=_uniform_layers(unet), up_attention_blocks=up_attention
    )
    tensors.update(
        ldm_keys.vae_to_ldm(pipeline.vae.state_dict(), num_up_blocks=len(pipeline.vae.decoder.up_blocks))
    )
    for name, prefix, open_clip in _TEXT_ENCODER_PREFIXES[_check_family(family)]:
        encoder = getattr(pipeline, name, None)
        if encoder is None:
            raise CheckpointError(f"family {family!r} needs pipeline.{name}, which is missing")
        convert = ldm_keys.open_clip_to_ldm if open_clip else ldm_keys.clip_to_ldm
        tensors.update(convert(encoder.state_dict(), prefix=prefix))
    return tensors


def export_checkpoint(
    pipeline: DiffusionPipeline, path: Path, *, family: str, dtype: torch.dtype | None = None
) -> Path:
    """Write `pipeline` as an A1111 single-file safetensors checkpoint; its diffusers configs go in the metadata."""
    tensors = pipeline_to_ldm(pipeline, family=family)
    tensors = {
        k: (v.to(dtype) if dtype else v).detach().cpu().contiguous().clone() for k, v in tensors.items()
    }
    metadata = {
        "format": "pt",
        FAMILY_METADATA_KEY: family,
        CONFIGS_METADATA_KEY: json.dumps(pipeline_configs(pipeline, family=family), sort_keys=True),
    }
    return save_safetensors(tensors, Path(path), metadata=metadata)


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a `.safetensors` file (or a pickled `.ckpt`, read with weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint path {str(path)!r} is not a file")
    if path.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        data = torch.load(path, map_location="cpu", weights_only=True)
        data = data.get("state_dict", data) if isinstance(data, dict) else data
        return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}, {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    except Exception as exc:  # safetensors raises several unrelated types for a bad header
        raise CheckpointError(f"checkpoint {path.name!r} is not a readable safetensors file: {exc}") from exc


def detect_family(state_dict: dict[str, torch.Tensor]) -> str:
    """Tell SD1 / SD2 / SDXL base / SDXL refiner apart by tensor names, then by cross-attention width."""
    keys = state_dict.keys()
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if any(k.startswith(ldm_keys.REFINER_OPEN_CLIP_PREFIX) for k in keys):
        return "sdxl_refiner"
    if any(k.startswith(ldm_keys.SD2_OPEN_CLIP_PREFIX) for k in keys):
        return "sd2"
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd1"
    for key, tensor in state_dict.items():
        if key.startswith(ldm_keys.UNET_PREFIX) and key.endswith("attn2.to_k.weight"):
            family = _CONTEXT_DIMS.get(int(tensor.shape[1]))
            if family:
                return family
            raise CheckpointError(
                f"unknown cross-attention width {tensor.shape[1]}; expected one of {list(_CONTEXT_DIMS)}"
            )
    raise CheckpointError("checkpoint has no Stable Diffusion UNet under 'model.diffusion_model.'")


def packaged_configs(family: str) -> dict[str, Any]:
    """The shipped diffusers configs of the real model of `family` (SD 1.5, SD 2.1, SDXL base/refiner)."""
    name = PACKAGED_CONFIGS[_check_family(family)]
    text = resources.files("sdfleet.engine.configs").joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def _write_config_folder(configs: dict[str, Any], folder: Path) -> None:
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name in configs:
            (folder / name).mkdir(parents=True, exist_ok=True)
            (folder / name / "config.json").write_text(json.dumps(configs[name]), encoding="utf-8")


def _assert_materialised(model: torch.nn.Module, *, component: str, path: Path) -> None:
    """diffusers leaves weights missing from the file on the meta device; refuse such a model."""
    missing = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if missing:
        raise CheckpointError(
            f"checkpoint {path.name!r} lacks {len(missing)} {component} weights (first: {missing[0]})"
        )


def _load_model(cls: type, state_dict: dict, *, name: str, common: dict[str, Any], path: Path) -> Any:
    try:
        return cls.from_single_file(state_dict, subfolder=name, **common)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        # A weight missing from the file stays on the meta device and fails the move; shapes fail earlier.
        raise CheckpointError(
            f"checkpoint {path.name!r} lacks {name} weights or holds other shapes: {exc}"
        ) from exc


def _move(model: torch.nn.Module, *, device: str, dtype: torch.dtype) -> None:
    # Cast only when needed: diffusers warns about fp32 modules on every `.to(dtype)`.
    if next(model.parameters()).dtype != dtype:
        model.to(dtype=dtype)
    model.to(device)


def _load_text_encoder(cls: type, state_dict: dict, *, name: str, folder: Path) -> Any:
    try:
        return create_diffusers_clip_model_from_ldm(
            cls, state_dict, subfolder=name, config=str(folder), local_files_only=True
        )
    except ValueError as exc:
        raise CheckpointError(f"cannot load {name}: {exc}") from exc


def _resolve(
    state_dict: dict[str, torch.Tensor],
    metadata: dict[str, str],
    *,
    family: str | None,
    configs: dict[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """Pick the family (override, metadata, detection) and the configs (caller, metadata, packaged)."""
    if family:
        family = _check_family(family)
    else:
        family = _check_family(metadata.get(FAMILY_METADATA_KEY) or detect_family(state_dict))
    if configs is None and CONFIGS_METADATA_KEY in metadata:
        configs = json.loads(metadata[CONFIGS_METADATA_KEY])
    if configs is None or configs.get("family", family) != family:
        configs = packaged_configs(family)
    return family, configs


def load_checkpoint(
    path: Path,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    family: str | None = None,
    configs: dict[str, Any] | None = None,
) -> CheckpointComponents:
    """Load an A1111 single-file checkpoint offline, each component through diffusers' single-file converter.

    Args:
        family: overrides the family found in the file's metadata or detected from its tensors.
        configs: diffusers configs to use instead of the file's `sdfleet.configs` metadata or the packaged ones.
    """
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    family, configs = _resolve(state_dict, metadata, family=family, configs=configs)
    encoders: dict[str, Any] = {
        "text_encoder": None,
        "text_encoder_2": None,
        "tokenizer": None,
        "tokenizer_2": None,
    }
    with tempfile.TemporaryDirectory(prefix="sdfleet-config-") as tmp:
        folder = Path(tmp)
        _write_config_folder(configs, folder)
        # dtype is applied afterwards: diffusers' own cast warns on every call.
        common = {"config": str(folder), "local_files_only": True}
        unet = _load_model(UNet2DConditionModel, state_dict, name="unet", common=common, path=path)
        vae = _load_model(AutoencoderKL, state_dict, name="vae", common=common, path=path)
        for name, _, _ in _TEXT_ENCODER_PREFIXES[family]:
            cls = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
            encoders[name] = _load_text_encoder(cls, state_dict, name=name, folder=folder)
            spec = configs[name.replace("text_encoder", "tokenizer")]
            encoders[name.replace("text_encoder", "tokenizer")] = load_tokenizer(
                spec["kind"], pad_token=spec.get("pad_token", EOS)
            )
    for component, model in (
        ("unet", unet),
        ("vae", vae),
        ("text_encoder", encoders["text_encoder"]),
        ("text_encoder_2", encoders["text_encoder_2"]),
    ):
        if model is not None:
            _assert_materialised(model, component=component, path=path)
            _move(model, device=device, dtype=dtype)
    return CheckpointComponents(
        family=family, unet=unet, vae=vae, scheduler_config=dict(configs["scheduler"]), **encoders
    )


def load_vae(
    path: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32, family: str = "sd1"
) -> AutoencoderKL:
    """Load a standalone VAE file (LDM keys with or without `first_stage_model.`, or diffusers keys)."""
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    if CONFIGS_METADATA_KEY in metadata:
        configs = json.loads(metadata[CONFIGS_METADATA_KEY])
    else:
        configs = packaged_configs(family)
    with tempfile.TemporaryDirectory(prefix="sdfleet-config-") as tmp:
        _write_config_folder({"vae": configs["vae"]}, Path(tmp))
        common = {"config": tmp, "local_files_only": True}
        vae = _load_model(AutoencoderKL, state_dict, name="vae", common=common, path=path)
    _assert_materialised(vae, component="vae", path=path)
    _move(vae, device=device, dtype=dtype)
    return vae
