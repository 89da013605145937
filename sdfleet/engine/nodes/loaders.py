"""Loader nodes: checkpoints, VAEs, LoRAs, ControlNets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sdfleet.engine.files import ModelFiles
from sdfleet.engine.model_loader import ClipRef, ComponentFiles, ControlNetRef, LoraApplication, ModelRef, VaeRef
from sdfleet.engine.model_patches import SamplingPatch
from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    combo_input,
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


#: ComfyUI's models/configs files: how each reads the model's output (the prediction type) and which CLIP
#: layer its prompts use. sdfleet builds the model from its own packaged configs; the choice keeps its meaning.
CHECKPOINT_CONFIGS: dict[str, tuple[str, int | None]] = {
    "anything_v3.yaml": ("eps", -2),
    "v1-inference.yaml": ("eps", None),
    "v1-inference_clip_skip_2.yaml": ("eps", -2),
    "v1-inference_clip_skip_2_fp16.yaml": ("eps", -2),
    "v1-inference_fp16.yaml": ("eps", None),
    "v1-inpainting-inference.yaml": ("eps", None),
    "v2-inference-v.yaml": ("v_prediction", None),
    "v2-inference-v_fp16.yaml": ("v_prediction", None),
    "v2-inference.yaml": ("eps", None),
    "v2-inference_fp16.yaml": ("eps", None),
    "v2-inpainting-inference.yaml": ("eps", None),
}


def load_checkpoint_with_config(ctx: NodeContext, *, config_name: str, ckpt_name: str) -> tuple[Any, ...]:
    """CheckpointLoader: the checkpoint read as its ComfyUI config says (v-prediction or eps; CLIP skip 2)."""
    model, clip, vae = load_checkpoint(ctx, ckpt_name=ckpt_name)
    sampling, layer = CHECKPOINT_CONFIGS[config_name]
    model = replace(model, patches=model.patches + (SamplingPatch(sampling),))
    return model, replace(clip, stop_at_layer=layer) if layer is not None else clip, vae


#: ComfyUI's UNETLoader weight types; the engine runs every model in its own dtype (fp16 on CUDA, fp32 on CPU)
WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2")


def load_unet(ctx: NodeContext, *, unet_name: str, weight_dtype: str) -> tuple[Any, ...]:
    """UNETLoader: a diffusion-model (UNet-only) file as a MODEL."""
    files = ComponentFiles("unet", (ctx.files.model_path("diffusion_models", unet_name),))
    ctx.models.checkpoint(files)
    return (ModelRef(files),)


def load_clip(ctx: NodeContext, *, clip_name: str, type: str, device: str = "default") -> tuple[Any, ...]:
    """CLIPLoader: one text-encoder file (CLIP-L for SD 1.x, OpenCLIP-H for SD 2.x) as a CLIP."""
    files = ComponentFiles(type, (ctx.files.model_path("text_encoders", clip_name),))
    ctx.models.checkpoint(files)
    return (ClipRef(files),)


def load_dual_clip(ctx: NodeContext, *, clip_name1: str, clip_name2: str, type: str,
                   device: str = "default") -> tuple[Any, ...]:
    """DualCLIPLoader: SDXL's CLIP-L and OpenCLIP-G files (either order) as one CLIP."""
    files = ComponentFiles(type, (ctx.files.model_path("text_encoders", clip_name1),
                                  ctx.files.model_path("text_encoders", clip_name2)))
    ctx.models.checkpoint(files)
    return (ClipRef(files),)


def _shas(folder: str, *names: str) -> Any:
    def fingerprint(files: ModelFiles, inputs: dict[str, Any]) -> list[str]:
        return [files.model_path(folder, inputs[name]).sha256 for name in names]
    return fingerprint


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
        "CheckpointLoader",
        (combo_input("config_name", tuple(CHECKPOINT_CONFIGS), default="v1-inference.yaml"),
         model_input("ckpt_name", "checkpoints")),
        (OutputSpec("MODEL", "MODEL"), OutputSpec("CLIP", "CLIP"), OutputSpec("VAE", "VAE")),
        "advanced/loaders", "Load Checkpoint With Config (DEPRECATED)"),
        load_checkpoint_with_config, _sha("checkpoints", "ckpt_name")),
    NodeDefinition(NodeSpec(
        "UNETLoader",
        (model_input("unet_name", "diffusion_models"), combo_input("weight_dtype", WEIGHT_DTYPES)),
        (OutputSpec("MODEL", "MODEL"),), "advanced/loaders", "Load Diffusion Model"),
        load_unet, _sha("diffusion_models", "unet_name")),
    NodeDefinition(NodeSpec(
        "CLIPLoader",
        (model_input("clip_name", "text_encoders"), combo_input("type", ("stable_diffusion",)),
         InputSpec("device", "COMBO", default="default", choices=("default", "cpu"), optional=True)),
        (OutputSpec("CLIP", "CLIP"),), "advanced/loaders", "Load CLIP"),
        load_clip, _sha("text_encoders", "clip_name")),
    NodeDefinition(NodeSpec(
        "DualCLIPLoader",
        (model_input("clip_name1", "text_encoders"), model_input("clip_name2", "text_encoders"),
         combo_input("type", ("sdxl",)),
         InputSpec("device", "COMBO", default="default", choices=("default", "cpu"), optional=True)),
        (OutputSpec("CLIP", "CLIP"),), "advanced/loaders", "DualCLIPLoader"),
        load_dual_clip, _shas("text_encoders", "clip_name1", "clip_name2")),
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
