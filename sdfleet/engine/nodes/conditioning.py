"""Conditioning nodes: text encoding, CLIP layer choice, combining, ControlNet application."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from sdfleet.engine.model_loader import Checkpoint, ClipRef, ControlNetRef, VaeRef
from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    float_input,
    int_input,
    link_input,
)
from sdfleet.engine.nodes.context import NodeContext


@dataclass(frozen=True)
class ControlApplication:
    """A ControlNet attached to a conditioning: hint image [B,H,W,C] in 0..1, strength and step range."""

    control_net: ControlNetRef
    image: torch.Tensor
    strength: float
    start_percent: float
    end_percent: float


@dataclass(frozen=True)
class CondEntry:
    """One conditioning: token embeddings [1, tokens, dim], SDXL pooled embedding, optional ControlNet."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    control: ControlApplication | None = None


def _tokens(tokenizer: Any, text: str, device: torch.device) -> torch.Tensor:
    return tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids.to(device)


def encode_text(ckpt: Checkpoint, text: str, *, stop_at_layer: int | None,
                device: torch.device) -> CondEntry:
    """Encode a prompt as diffusers' pipelines do (ComfyUI's CLIPSetLastLayer index picks the hidden state)."""
    if ckpt.text_encoder_2 is None or ckpt.family in ("sd1", "sd2"):
        te = ckpt.text_encoder
        ids = _tokens(ckpt.tokenizer, text, device)
        mask = None
        if getattr(te.config, "use_attention_mask", False):
            mask = ckpt.tokenizer(text, padding="max_length", max_length=ckpt.tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt").attention_mask.to(device)
        if stop_at_layer is None or stop_at_layer == -1:
            embeds = te(ids, attention_mask=mask)[0]
        else:
            hidden = te(ids, attention_mask=mask, output_hidden_states=True).hidden_states[stop_at_layer]
            embeds = te.text_model.final_layer_norm(hidden)
        return CondEntry(embeds.to(dtype=te.dtype))
    layer = -2 if stop_at_layer is None else stop_at_layer
    parts, pooled = [], None
    pairs = [(ckpt.tokenizer, ckpt.text_encoder), (ckpt.tokenizer_2, ckpt.text_encoder_2)]
    for tokenizer, te in pairs:
        if te is None:
            continue
        out = te(_tokens(tokenizer, text, device), output_hidden_states=True)
        if pooled is None and out[0].ndim == 2:
            pooled = out[0]
        parts.append(out.hidden_states[layer])
    return CondEntry(torch.cat(parts, dim=-1), pooled)


def clip_text_encode(ctx: NodeContext, *, text: str, clip: ClipRef) -> tuple[Any, ...]:
    """CLIPTextEncode."""
    ckpt = ctx.models.checkpoint(clip.checkpoint)
    ctx.models.apply_clip_loras(ckpt, clip.loras)
    return ([encode_text(ckpt, text, stop_at_layer=clip.stop_at_layer, device=ctx.device)],)


def clip_set_last_layer(ctx: NodeContext, *, clip: ClipRef, stop_at_clip_layer: int) -> tuple[Any, ...]:
    """CLIPSetLastLayer: -1 is the last layer, -2 the penultimate, …"""
    return (replace(clip, stop_at_layer=stop_at_clip_layer),)


def conditioning_combine(ctx: NodeContext, *, conditioning_1: list[CondEntry],
                         conditioning_2: list[CondEntry]) -> tuple[Any, ...]:
    """ConditioningCombine: the sampler averages the predictions of all entries."""
    return (list(conditioning_1) + list(conditioning_2),)


def controlnet_apply_advanced(ctx: NodeContext, *, positive: list[CondEntry], negative: list[CondEntry],
                              control_net: ControlNetRef, image: torch.Tensor, strength: float,
                              start_percent: float, end_percent: float,
                              vae: VaeRef | None = None) -> tuple[Any, ...]:
    """ControlNetApplyAdvanced: attach the ControlNet and hint image to every entry of both conditionings."""
    if strength == 0:
        return positive, negative
    control = ControlApplication(control_net, image, strength, start_percent, end_percent)
    return [replace(e, control=control) for e in positive], [replace(e, control=control) for e in negative]


NODES = [
    NodeDefinition(NodeSpec(
        "CLIPTextEncode",
        (InputSpec("text", "STRING", default="", multiline=True), link_input("clip", "CLIP")),
        (OutputSpec("CONDITIONING", "CONDITIONING"),), "conditioning", "CLIP Text Encode (Prompt)"),
        clip_text_encode),
    NodeDefinition(NodeSpec(
        "CLIPSetLastLayer",
        (link_input("clip", "CLIP"), int_input("stop_at_clip_layer", default=-1, min=-24, max=-1)),
        (OutputSpec("CLIP", "CLIP"),), "conditioning", "CLIP Set Last Layer"), clip_set_last_layer),
    NodeDefinition(NodeSpec(
        "ConditioningCombine",
        (link_input("conditioning_1", "CONDITIONING"), link_input("conditioning_2", "CONDITIONING")),
        (OutputSpec("CONDITIONING", "CONDITIONING"),), "conditioning", "Conditioning (Combine)"),
        conditioning_combine),
    NodeDefinition(NodeSpec(
        "ControlNetApplyAdvanced",
        (link_input("positive", "CONDITIONING"), link_input("negative", "CONDITIONING"),
         link_input("control_net", "CONTROL_NET"), link_input("image", "IMAGE"),
         float_input("strength", default=1.0, min=0.0, max=10.0, step=0.01),
         float_input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001),
         float_input("end_percent", default=1.0, min=0.0, max=1.0, step=0.001),
         link_input("vae", "VAE", optional=True)),
        (OutputSpec("CONDITIONING", "positive"), OutputSpec("CONDITIONING", "negative")),
        "conditioning/controlnet", "Apply ControlNet"), controlnet_apply_advanced),
]
