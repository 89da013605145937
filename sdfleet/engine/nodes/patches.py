"""Model patch nodes: ModelSamplingDiscrete, RescaleCFG, FreeU, FreeU_V2 (ComfyUI's names, inputs and defaults)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sdfleet.engine.model_loader import ModelRef
from sdfleet.engine.model_patches import SAMPLING_TYPES, FreeUPatch, RescaleCfgPatch, SamplingPatch
from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    combo_input,
    float_input,
    link_input,
)
from sdfleet.engine.nodes.context import NodeContext


def _patched(model: ModelRef, patch: Any) -> tuple[Any, ...]:
    return (replace(model, patches=(*model.patches, patch)),)


def model_sampling_discrete(ctx: NodeContext, *, model: ModelRef, sampling: str, zsnr: bool) -> tuple[Any, ...]:
    """ModelSamplingDiscrete: read the model as eps, v-prediction, LCM or x0, optionally with zero terminal SNR."""
    return _patched(model, SamplingPatch(sampling, zsnr))


def rescale_cfg(ctx: NodeContext, *, model: ModelRef, multiplier: float) -> tuple[Any, ...]:
    """RescaleCFG."""
    return _patched(model, RescaleCfgPatch(multiplier))


def free_u(ctx: NodeContext, *, model: ModelRef, b1: float, b2: float, s1: float, s2: float) -> tuple[Any, ...]:
    """FreeU."""
    return _patched(model, FreeUPatch(b1, b2, s1, s2, version=1))


def free_u_v2(ctx: NodeContext, *, model: ModelRef, b1: float, b2: float, s1: float, s2: float) -> tuple[Any, ...]:
    """FreeU_V2: the backbone factor modulated by each position's normalized mean feature."""
    return _patched(model, FreeUPatch(b1, b2, s1, s2, version=2))


MODEL = OutputSpec("MODEL", "MODEL")


def _factors(b1: float, b2: float) -> tuple:
    return tuple(float_input(name, default=default, min=0.0, max=10.0, step=0.01)
                 for name, default in (("b1", b1), ("b2", b2), ("s1", 0.9), ("s2", 0.2)))


NODES = [
    NodeDefinition(NodeSpec(
        "ModelSamplingDiscrete",
        (link_input("model", "MODEL"), combo_input("sampling", tuple(SAMPLING_TYPES)),
         InputSpec("zsnr", "BOOLEAN", default=False)),
        (MODEL,), "model/patch", "ModelSamplingDiscrete"), model_sampling_discrete),
    NodeDefinition(NodeSpec(
        "RescaleCFG",
        (link_input("model", "MODEL"), float_input("multiplier", default=0.7, min=0.0, max=1.0, step=0.01)),
        (MODEL,), "model/patch", "RescaleCFG"), rescale_cfg),
    NodeDefinition(NodeSpec(
        "FreeU", (link_input("model", "MODEL"), *_factors(1.1, 1.2)), (MODEL,), "model_patches/unet", "FreeU"),
        free_u),
    NodeDefinition(NodeSpec(
        "FreeU_V2", (link_input("model", "MODEL"), *_factors(1.3, 1.4)), (MODEL,), "model_patches/unet",
        "FreeU (v2)"), free_u_v2),
]
