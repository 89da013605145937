"""ControlNet files in the original (LDM) layout: the config read from tensor shapes, loading, and writing.

A real `control_v11p_sd15_*.safetensors` holds the control half of the LDM UNet (`input_blocks`, `middle_block`,
`time_embed`) plus `input_hint_block`, `zero_convs` and `middle_block_out`, with no config beside it; older
files prefix every key with `control_model.`. Everything but the attention head count can be read from the
shapes; the head count is the family's (SD 1.x: 8 heads, SD 2.x: 64 channels a head), as the originals use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from diffusers import ControlNetModel
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

from sdfleet.engine import ldm_keys
from sdfleet.engine.tensor_file import save_safetensors

LDM_PREFIX = "control_model."
_SD2_CONTEXT = 1024


class ControlNetFileError(ValueError):
    """A ControlNet file that cannot be read as an SD 1.x/2.x ControlNet."""


def is_ldm_controlnet(state_dict: dict[str, torch.Tensor]) -> bool:
    """True for the original layout (`input_hint_block.` keys, with or without `control_model.`)."""
    return any(k.removeprefix(LDM_PREFIX).startswith("input_hint_block.") for k in state_dict)


def _conv_indices(state_dict: dict[str, torch.Tensor], pattern: str) -> list[int]:
    found = {int(m.group(1)) for k in state_dict if (m := re.fullmatch(pattern, k))}
    return sorted(found)


def ldm_controlnet_config(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The diffusers ControlNetModel config of an LDM-layout ControlNet (keys without `control_model.`)."""
    if "label_emb.0.0.weight" in state_dict:
        raise ControlNetFileError("SDXL ControlNets are read in the diffusers layout only (this file is LDM)")
    if "input_blocks.0.0.weight" not in state_dict:
        raise ControlNetFileError("not a ControlNet: no input_blocks.0.0.weight")
    inputs = _conv_indices(state_dict, r"input_blocks\.(\d+)\..*")
    downsamplers = _conv_indices(state_dict, r"input_blocks\.(\d+)\.0\.op\.weight")
    blocks = len(downsamplers) + 1
    layers = (max(inputs) + 1) // blocks - 1
    channels, types, transformer_layers = [], [], []
    for b in range(blocks):
        first = 1 + b * (layers + 1)
        channels.append(int(state_dict[f"input_blocks.{first}.0.out_layers.3.weight"].shape[0]))
        depth = len(_conv_indices(state_dict, rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\.attn1\.to_q\.weight"))
        types.append("CrossAttnDownBlock2D" if depth else "DownBlock2D")
        transformer_layers.append(max(depth, 1))
    proj = next((v for k, v in state_dict.items() if k.endswith(".proj_in.weight")), None)
    context = next((int(v.shape[1]) for k, v in state_dict.items() if k.endswith("attn2.to_k.weight")), None)
    if proj is None or context is None:
        raise ControlNetFileError("a ControlNet without cross-attention is not an SD 1.x/2.x ControlNet")
    hint = _conv_indices(state_dict, r"input_hint_block\.(\d+)\.weight")
    # conv_in, then pairs (same width, stride-2 widening), then conv_out: widths are conv_in's and each widening's
    embedding = [int(state_dict[f"input_hint_block.{hint[0]}.weight"].shape[0])]
    embedding += [int(state_dict[f"input_hint_block.{i}.weight"].shape[0]) for i in hint[2:-1:2]]
    heads: Any = [c // 64 for c in channels] if context == _SD2_CONTEXT else 8
    return {
        "in_channels": int(state_dict["input_blocks.0.0.weight"].shape[1]),
        "conditioning_channels": int(state_dict[f"input_hint_block.{hint[0]}.weight"].shape[1]),
        "down_block_types": types,
        "block_out_channels": channels,
        "layers_per_block": layers,
        "transformer_layers_per_block": transformer_layers,
        "cross_attention_dim": context,
        "attention_head_dim": heads,
        "use_linear_projection": proj.ndim == 2,
        "conditioning_embedding_out_channels": embedding,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
    }


def load_ldm_controlnet(state_dict: dict[str, torch.Tensor]) -> ControlNetModel:
    """A ControlNetModel from an LDM-layout state dict; every weight must be there with its shape."""
    plain = {k.removeprefix(LDM_PREFIX): v for k, v in state_dict.items()}
    config = ldm_controlnet_config(plain)
    model = ControlNetModel(**config)
    converted = convert_controlnet_checkpoint(plain, config)
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise ControlNetFileError(f"the ControlNet's weights do not fit the config read from it: {exc}") from exc
    return model


def controlnet_to_ldm(model: ControlNetModel) -> dict[str, torch.Tensor]:
    """A diffusers ControlNetModel's weights in the original LDM layout (as `control_v11p_sd15_*` files)."""
    unet_part, out = {}, {}
    for key, tensor in model.state_dict().items():
        head = key.split(".")[0]
        if head == "controlnet_cond_embedding":
            rest = key.removeprefix("controlnet_cond_embedding.")
            count = len(model.controlnet_cond_embedding.blocks)
            if rest.startswith("conv_in."):
                out["input_hint_block.0." + rest.removeprefix("conv_in.")] = tensor
            elif rest.startswith("conv_out."):
                out[f"input_hint_block.{2 * (count + 1)}." + rest.removeprefix("conv_out.")] = tensor
            else:
                _, index, param = rest.split(".")
                out[f"input_hint_block.{2 * (int(index) + 1)}.{param}"] = tensor
        elif head == "controlnet_down_blocks":
            _, index, param = key.split(".")
            out[f"zero_convs.{index}.0.{param}"] = tensor
        elif head == "controlnet_mid_block":
            out["middle_block_out.0." + key.split(".")[-1]] = tensor
        else:
            unet_part[key] = tensor
    layers = model.config.layers_per_block
    layers = layers if isinstance(layers, int) else int(layers[0])
    for key, tensor in ldm_keys.unet_to_ldm(unet_part, layers_per_block=layers, up_attention_blocks=set()).items():
        out[key.removeprefix(ldm_keys.UNET_PREFIX)] = tensor
    return out


def write_ldm_controlnet(model: ControlNetModel, path: Path) -> Path:
    """Save a ControlNetModel as an LDM-layout `.safetensors` file with no config (as the released files)."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in controlnet_to_ldm(model).items()}
    return save_safetensors(tensors, Path(path), metadata={"format": "pt"})
