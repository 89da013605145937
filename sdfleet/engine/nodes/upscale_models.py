"""ComfyUI's upscaler-model nodes: UpscaleModelLoader and ImageUpscaleWithModel (spandrel models)."""

from __future__ import annotations

from typing import Any

import torch

from sdfleet.engine.node_registry import NodeDefinition, NodeSpec, OutputSpec, link_input, model_input
from sdfleet.engine.nodes.context import NodeContext


def _sha(files: Any, inputs: dict[str, Any]) -> str:
    return files.model_path("upscale_models", inputs["model_name"]).sha256


def load_upscale_model(ctx: NodeContext, *, model_name: str) -> tuple[Any, ...]:
    """UpscaleModelLoader: an ESRGAN/SwinIR/… file from the registry's upscaler folder, through spandrel."""
    from sdfleet.engine.upscale_models import load_upscale_model as load

    return (load(ctx.files.model_path("upscale_models", model_name).path, device=ctx.device),)


def image_upscale_with_model(ctx: NodeContext, *, upscale_model: Any, image: torch.Tensor) -> tuple[Any, ...]:
    """ImageUpscaleWithModel: the image (RGB, as ComfyUI feeds it) through the model, clamped to 0..1.

    ComfyUI tiles images larger than 512 px (32 px overlap); here the whole image is one tile."""
    from sdfleet.engine.upscale_models import run_model

    out = [run_model(upscale_model, one.movedim(-1, 0).unsqueeze(0))[0].movedim(0, -1).cpu() for one in image]
    ctx.check_cancel()
    return (torch.stack(out),)


NODES = [
    NodeDefinition(NodeSpec(
        "UpscaleModelLoader", (model_input("model_name", "upscale_models"),),
        (OutputSpec("UPSCALE_MODEL", "UPSCALE_MODEL"),), "loaders", "Load Upscale Model"), load_upscale_model,
        _sha),
    NodeDefinition(NodeSpec(
        "ImageUpscaleWithModel", (link_input("upscale_model", "UPSCALE_MODEL"), link_input("image", "IMAGE")),
        (OutputSpec("IMAGE", "IMAGE"),), "image/upscaling", "Upscale Image (using Model)"),
        image_upscale_with_model),
]
