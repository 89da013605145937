"""Loader nodes: checkpoints, VAEs, LoRAs, ControlNets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sdfleet.engine.files import ModelFiles
from sdfleet.engine.model_loader import ClipRef, ControlNetRef, LoraApplication, ModelRef, VaeRef
from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    float_input,
    link_input,
    model_input,
)
from sdfleet.engine.nodes.context import NodeContext


def _sha(folder: str, input_name: str) -> Any:
    def fingerprint(files: ModelFiles, inputs: dict[str, Any]) -> str:
        return files.model_path(folder, inputs[input_name]).sha256
    return fingerprint


def load_checkpoint(ctx: NodeContext, *, ckpt_name: str) -> tuple[Any, ...]:
    """CheckpointLoaderSimple: load now so a bad file fails here, hand out lightweight handles."""
    file = ctx.files.model_path("checkpoints", ckpt_name)
    ctx.models.checkpoint(file)
    return ModelRef(file), ClipRef(file), VaeRef(file)


def load_vae(ctx: NodeContext, *, vae_name: str) -> tuple[Any, ...]:
    """VAELoader."""
    ref = VaeRef(ctx.files.model_path("vae", vae_name), standalone=True)
    ctx.models.vae(ref)
    return (ref,)


def load_lora(ctx: NodeContext, *, model: ModelRef, clip: ClipRef, lora_name: str, strength_model: float,
              strength_clip: float) -> tuple[Any, ...]:
    """LoraLoader: add the LoRA to the model's and the clip's patch lists (applied when they are used)."""
    file = ctx.files.model_path("loras", lora_name)
    new_model = replace(model, loras=model.loras + (LoraApplication(file, strength_model),)) \
        if strength_model != 0 else model
    new_clip = ClipRef(clip.checkpoint, clip.loras + (LoraApplication(file, strength_clip),), clip.stop_at_layer) \
        if strength_clip != 0 else clip
    return new_model, new_clip


def load_lora_model_only(ctx: NodeContext, *, model: ModelRef, lora_name: str,
                         strength_model: float) -> tuple[Any, ...]:
    """LoraLoaderModelOnly."""
    return load_lora(ctx, model=model, clip=ClipRef(model.checkpoint), lora_name=lora_name,
                     strength_model=strength_model, strength_clip=0)[:1]


def load_controlnet(ctx: NodeContext, *, control_net_name: str) -> tuple[Any, ...]:
    """ControlNetLoader."""
    ref = ControlNetRef(ctx.files.model_path("controlnet", control_net_name))
    ctx.models.controlnet(ref)
    return (ref,)


_STRENGTH = {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}

NODES = [
    NodeDefinition(NodeSpec(
        "CheckpointLoaderSimple", (model_input("ckpt_name", "checkpoints"),),
        (OutputSpec("MODEL", "MODEL"), OutputSpec("CLIP", "CLIP"), OutputSpec("VAE", "VAE")),
        "loaders", "Load Checkpoint"), load_checkpoint, _sha("checkpoints", "ckpt_name")),
    NodeDefinition(NodeSpec(
        "VAELoader", (model_input("vae_name", "vae"),), (OutputSpec("VAE", "VAE"),), "loaders", "Load VAE"),
        load_vae, _sha("vae", "vae_name")),
    NodeDefinition(NodeSpec(
        "LoraLoader",
        (link_input("model", "MODEL"), link_input("clip", "CLIP"), model_input("lora_name", "loras"),
         float_input("strength_model", **_STRENGTH), float_input("strength_clip", **_STRENGTH)),
        (OutputSpec("MODEL", "MODEL"), OutputSpec("CLIP", "CLIP")), "loaders", "Load LoRA"),
        load_lora, _sha("loras", "lora_name")),
    NodeDefinition(NodeSpec(
        "LoraLoaderModelOnly",
        (link_input("model", "MODEL"), model_input("lora_name", "loras"), float_input("strength_model", **_STRENGTH)),
        (OutputSpec("MODEL", "MODEL"),), "loaders", "LoraLoaderModelOnly"),
        load_lora_model_only, _sha("loras", "lora_name")),
    NodeDefinition(NodeSpec(
        "ControlNetLoader", (model_input("control_net_name", "controlnet"),),
        (OutputSpec("CONTROL_NET", "CONTROL_NET"),), "loaders", "Load ControlNet Model"),
        load_controlnet, _sha("controlnet", "control_net_name")),
]

__all__ = ["NODES", "InputSpec"]
