"""Diffusers state dicts to the original LDM (A1111 single-file) key layout, for any block counts."""

from __future__ import annotations

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer.text_model."
SD2_OPEN_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
REFINER_OPEN_CLIP_PREFIX = "conditioner.embedders.0.model."

_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_VAE_TOP = {"conv_norm_out": "norm_out"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPEN_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


class LdmKeyError(ValueError):
    """A diffusers key has no place in the LDM layout."""


def _split(key: str, count: int) -> tuple[list[str], str]:
    parts = key.split(".")
    return parts[:count], ".".join(parts[count:])


def _rename(rest: str, table: dict[str, str], *, component: str, key: str) -> str:
    for old, new in table.items():
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old) :]
    raise LdmKeyError(f"{component} key {key!r} has no LDM equivalent (expected one of {sorted(table)})")


def unet_to_ldm(
    state_dict: dict[str, torch.Tensor], *, layers_per_block: int, up_attention_blocks: set[int]
) -> dict[str, torch.Tensor]:
    """Rename a diffusers UNet2DConditionModel state dict to `model.diffusion_model.` LDM keys.

    Args:
        layers_per_block: resnets per down block (up blocks have one more), uniform as LDM requires.
        up_attention_blocks: indices of up blocks that have attentions (their upsampler moves to slot 2).
    """
    per_down = layers_per_block + 1  # resnets (+ attentions) then one downsampler slot
    per_up = layers_per_block + 1
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        head = key.split(".")[0]
        if head in ("down_blocks", "up_blocks"):
            (_, block, kind, index), rest = _split(key, 4)
            b, i = int(block), int(index)
            if kind == "resnets":
                rest = _rename(rest, _UNET_RESNET, component="unet", key=key)
            slot = 0 if kind == "resnets" else 1
            if head == "down_blocks" and kind == "downsamplers":
                new = f"input_blocks.{1 + b * per_down + layers_per_block}.0.op.{rest.removeprefix('conv.')}"
            elif head == "down_blocks":
                new = f"input_blocks.{1 + b * per_down + i}.{slot}.{rest}"
            elif kind == "upsamplers":
                slot = 2 if b in up_attention_blocks else 1
                new = f"output_blocks.{b * per_up + layers_per_block}.{slot}.{rest}"
            else:
                new = f"output_blocks.{b * per_up + i}.{slot}.{rest}"
        elif head == "mid_block":
            (_, kind, index), rest = _split(key, 3)
            if kind == "resnets":
                rest = _rename(rest, _UNET_RESNET, component="unet", key=key)
                new = f"middle_block.{2 * int(index)}.{rest}"
            else:
                new = f"middle_block.1.{rest}"
        else:
            new = _rename(key, _UNET_TOP, component="unet", key=key)
        out[UNET_PREFIX + new] = tensor
    return out


def _vae_resnet(rest: str) -> str:
    return rest.replace("conv_shortcut", "nin_shortcut")


def _vae_mid(rest: str, tensor: torch.Tensor, *, key: str) -> tuple[str, torch.Tensor]:
    (kind, index), inner = _split(rest, 2)
    if kind == "resnets":
        return f"mid.block_{int(index) + 1}.{_vae_resnet(inner)}", tensor
    renamed = _rename(inner, _VAE_ATTENTION, component="vae", key=key)
    if tensor.ndim == 2:  # LDM stores the mid attention projections as 1x1 convolutions
        tensor = tensor[:, :, None, None]
    return f"mid.attn_1.{renamed}", tensor


def vae_to_ldm(state_dict: dict[str, torch.Tensor], *, num_up_blocks: int) -> dict[str, torch.Tensor]:
    """Rename a diffusers AutoencoderKL state dict to `first_stage_model.` LDM keys."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        side, _, rest = key.partition(".")
        if side not in ("encoder", "decoder"):
            out[VAE_PREFIX + key] = tensor  # quant_conv, post_quant_conv
            continue
        head, _, tail = rest.partition(".")
        if head in ("down_blocks", "up_blocks"):
            (block, kind, index), inner = _split(tail, 3)
            level = int(block) if head == "down_blocks" else num_up_blocks - 1 - int(block)
            name = "down" if head == "down_blocks" else "up"
            if kind == "resnets":
                new = f"{name}.{level}.block.{index}.{_vae_resnet(inner)}"
            else:
                sampler = "downsample" if head == "down_blocks" else "upsample"
                new = f"{name}.{level}.{sampler}.{inner}"
        elif head == "mid_block":
            new, tensor = _vae_mid(tail, tensor, key=key)
        else:
            new = _rename(
                rest, {**_VAE_TOP, "conv_in": "conv_in", "conv_out": "conv_out"}, component="vae", key=key
            )
        out[f"{VAE_PREFIX}{side}.{new}"] = tensor
    return out


def _text_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Normalise transformers 4/5 CLIP keys to `text_model.`-less names plus `text_projection.weight`."""
    return {k.removeprefix("text_model."): v for k, v in state_dict.items() if not k.endswith("position_ids")}


def clip_to_ldm(state_dict: dict[str, torch.Tensor], *, prefix: str) -> dict[str, torch.Tensor]:
    """Place an OpenAI CLIP text encoder under a `…transformer.text_model.` prefix, names unchanged."""
    return {prefix + k: v for k, v in _text_keys(state_dict).items() if not k.startswith("text_projection")}


def open_clip_to_ldm(state_dict: dict[str, torch.Tensor], *, prefix: str) -> dict[str, torch.Tensor]:
    """Rename a CLIP text encoder to OpenCLIP keys (fused q/k/v `in_proj`, `resblocks`, transposed projection)."""
    keys = _text_keys(state_dict)
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in keys.items():
        if key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = tensor
        elif key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = tensor
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.removeprefix("final_layer_norm.")] = tensor
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = tensor.T.contiguous()
        elif key.startswith("encoder.layers."):
            (_, _, layer), rest = _split(key, 3)
            block = f"{prefix}transformer.resblocks.{layer}."
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                _, proj, param = rest.split(".")
                fused.setdefault(f"{block}attn.in_proj_{param}", {})[proj] = tensor
            else:
                out[block + _rename(rest, _OPEN_CLIP_LAYER, component="text encoder", key=key)] = tensor
        else:
            raise LdmKeyError(f"text encoder key {key!r} has no OpenCLIP equivalent")
    for name, parts in fused.items():
        out[name] = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]], dim=0)
    return out
