"""Separate diffusion-model (UNet) and text-encoder files, as ComfyUI's UNETLoader, CLIPLoader and
DualCLIPLoader read them, loaded offline with the file's `sdfleet.configs` metadata or the packaged configs.

- A UNet file holds LDM keys (bare or under `model.diffusion_model.`) or diffusers keys; its family comes
  from its metadata or its cross-attention width (768 SD 1.x, 1024 SD 2.x, 2048 SDXL, 1280 SDXL refiner).
- A text-encoder file holds Hugging Face CLIP keys (with or without `text_model.`): CLIP-L (768 wide) for
  SD 1.x and SDXL, OpenCLIP-H (1024) for SD 2.x, OpenCLIP-G (1280, with its projection) for SDXL."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from sdfleet.engine import ldm_keys
from sdfleet.engine.checkpoints import (
    _CONTEXT_DIMS,
    CONFIGS_METADATA_KEY,
    FAMILY_METADATA_KEY,
    CheckpointError,
    _assert_materialised,
    _check_family,
    _load_model,
    _move,
    _write_config_folder,
    packaged_configs,
    read_state_dict,
)
from sdfleet.engine.tokenizers import EOS, load_tokenizer

_LDM_UNET_ROOTS = ("input_blocks.", "middle_block.", "output_blocks.", "time_embed.", "out.", "label_emb.")
#: text-encoder width → family of a CLIPLoader (single encoder) file
_SINGLE_ENCODER_FAMILY = {768: "sd1", 1024: "sd2"}


@dataclass
class LoadedUnet:
    """A diffusion-model file: its family, the UNet and the family's scheduler config."""

    family: str
    unet: UNet2DConditionModel
    scheduler_config: dict[str, Any]


@dataclass
class LoadedTextEncoders:
    """Text-encoder files as one checkpoint's encoders (SD 1.x/2.x: the first only; SDXL: both)."""

    family: str
    text_encoder: CLIPTextModel | None
    tokenizer: CLIPTokenizer | None
    text_encoder_2: CLIPTextModelWithProjection | None
    tokenizer_2: CLIPTokenizer | None


def _configs(metadata: dict[str, str], family: str) -> dict[str, Any]:
    if CONFIGS_METADATA_KEY in metadata:
        configs = json.loads(metadata[CONFIGS_METADATA_KEY])
        if configs.get("family", family) == family:
            return configs
    return packaged_configs(family)


def _unet_family(state_dict: dict[str, torch.Tensor]) -> str:
    for key, tensor in state_dict.items():
        if key.endswith("attn2.to_k.weight") and tensor.dim() == 2:
            family = _CONTEXT_DIMS.get(int(tensor.shape[1]))
            if family:
                return family
            raise CheckpointError(f"unknown cross-attention width {tensor.shape[1]}; expected one of "
                                  f"{list(_CONTEXT_DIMS)}")
    raise CheckpointError("the file holds no Stable Diffusion UNet (no cross-attention weights)")


def load_unet_file(path: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedUnet:
    """Load a UNet-only file (UNETLoader)."""
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    if any(k.startswith(("first_stage_model.", "cond_stage_model.", "conditioner.")) for k in state_dict):
        raise CheckpointError(f"{path.name!r} is a whole checkpoint: load it with a checkpoint loader")
    family = _check_family(metadata.get(FAMILY_METADATA_KEY) or _unet_family(state_dict))
    configs = _configs(metadata, family)
    if "conv_in.weight" in state_dict:  # diffusers keys
        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(configs["unet"])
        try:
            unet.load_state_dict(state_dict, strict=True, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path.name!r} does not fit the {family} UNet: {exc}") from exc
    else:
        if not any(k.startswith(ldm_keys.UNET_PREFIX) for k in state_dict):
            if not any(k.startswith(_LDM_UNET_ROOTS) for k in state_dict):
                raise CheckpointError(f"{path.name!r} holds no UNet weights in LDM or diffusers layout")
            state_dict = {ldm_keys.UNET_PREFIX + k: v for k, v in state_dict.items()}
        with tempfile.TemporaryDirectory(prefix="sdfleet-config-") as tmp:
            _write_config_folder({"unet": configs["unet"]}, Path(tmp))
            unet = _load_model(UNet2DConditionModel, state_dict, name="unet",
                               common={"config": tmp, "local_files_only": True}, path=path)
    _assert_materialised(unet, component="unet", path=path)
    if any(b.device.type == "meta" for b in unet.buffers()):
        raise CheckpointError(f"{path.name!r} lacks some UNet buffers")
    _move(unet, device=device, dtype=dtype)
    return LoadedUnet(family, unet, dict(configs["scheduler"]))


def _encoder_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], int, bool]:
    """The file's tensors without the `text_model.` prefix, its metadata, width and whether it has a projection."""
    state_dict, metadata = read_state_dict(path)
    bare = {k.removeprefix("text_model."): v for k, v in state_dict.items()}
    embedding = bare.get("embeddings.token_embedding.weight")
    if embedding is None:
        raise CheckpointError(f"{path.name!r} is not a CLIP text encoder in Hugging Face layout "
                              "(no embeddings.token_embedding.weight)")
    return bare, metadata, int(embedding.shape[1]), "text_projection.weight" in bare


def _build_encoder(cls: type, config: dict[str, Any], tensors: dict[str, torch.Tensor], *, path: Path) -> Any:
    model = cls(CLIPTextConfig.from_dict(config))
    own = model.state_dict()
    prefix = "text_model." if any(k.startswith("text_model.") for k in own) else ""
    wanted = {prefix + k if not k.startswith("text_projection") else k: v for k, v in tensors.items()}
    wanted = {k: v for k, v in wanted.items() if k in own}
    missing = sorted(set(own) - set(wanted))
    if missing:
        raise CheckpointError(f"{path.name!r} lacks {len(missing)} text-encoder weights (first: {missing[0]})")
    try:
        model.load_state_dict(wanted, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path.name!r} does not fit the text encoder: {exc}") from exc
    return model


def _tokenizer(configs: dict[str, Any], name: str) -> CLIPTokenizer:
    spec = configs.get(name, {"kind": "clip"})
    return load_tokenizer(spec["kind"], pad_token=spec.get("pad_token", EOS))


def load_text_encoder_files(paths: Sequence[Path], *, kind: str, device: str = "cpu",
                            dtype: torch.dtype = torch.float32) -> LoadedTextEncoders:
    """Load CLIPLoader's one file (`kind` "stable_diffusion") or DualCLIPLoader's two (`kind` "sdxl")."""
    files = [(Path(p), *_encoder_tensors(Path(p))) for p in paths]
    if kind == "stable_diffusion":
        ((path, tensors, metadata, width, _),) = files
        family = metadata.get(FAMILY_METADATA_KEY) or _SINGLE_ENCODER_FAMILY.get(width)
        if family not in ("sd1", "sd2"):
            raise CheckpointError(f"{path.name!r} is {width} wide: CLIPLoader's stable_diffusion type takes "
                                  "CLIP-L (768, SD 1.x) or OpenCLIP-H (1024, SD 2.x)")
        configs = _configs(metadata, family)
        encoder = _build_encoder(CLIPTextModel, configs["text_encoder"], tensors, path=path)
        _move(encoder, device=device, dtype=dtype)
        return LoadedTextEncoders(family, encoder.eval(), _tokenizer(configs, "tokenizer"), None, None)
    if kind != "sdxl" or len(files) != 2:
        raise CheckpointError(f"DualCLIPLoader takes two files of type sdxl, got {len(files)} of type {kind!r}")
    # OpenCLIP-G is the wider encoder with a projection; CLIP-L the other
    big, small = sorted(files, key=lambda f: (f[4], f[3]), reverse=True)
    if not big[4] or big[3] <= small[3]:
        raise CheckpointError("DualCLIPLoader (sdxl) needs CLIP-L and OpenCLIP-G (the wider one, with its "
                              f"text projection); got widths {small[3]} and {big[3]}")
    configs = _configs(big[2], "sdxl")
    text_l = _build_encoder(CLIPTextModel, configs["text_encoder"], small[1], path=small[0])
    text_g = _build_encoder(CLIPTextModelWithProjection, configs["text_encoder_2"], big[1], path=big[0])
    for encoder in (text_l, text_g):
        _move(encoder, device=device, dtype=dtype)
    return LoadedTextEncoders("sdxl", text_l.eval(), _tokenizer(configs, "tokenizer"), text_g.eval(),
                              _tokenizer(configs, "tokenizer_2"))
