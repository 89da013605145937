"""Conditioning nodes that change a CONDITIONING without encoding text (ComfyUI's names and inputs):
ConditioningConcat, ConditioningAverage, ConditioningZeroOut, ConditioningSetTimestepRange, and the area and
mask conditioning the denoiser applies per region (ConditioningSetArea, …Percentage, …Strength, …Mask)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from sdfleet.engine.node_registry import (
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    combo_input,
    float_input,
    int_input,
    link_input,
)
from sdfleet.engine.nodes.conditioning import CondEntry
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.latent import MAX_RESOLUTION

CONDITIONING = OutputSpec("CONDITIONING", "CONDITIONING")


def _map_tensors(entry: CondEntry, embeds: Callable[[torch.Tensor], torch.Tensor],
                 pooled: Callable[[torch.Tensor | None], torch.Tensor | None] = lambda p: p) -> CondEntry:
    """Apply the same change to an entry's embeddings and to each of its scheduled (A1111) conditionings."""
    schedule = tuple(replace(s, embeds=embeds(s.embeds), pooled=pooled(s.pooled)) for s in entry.schedule)
    return replace(entry, embeds=embeds(entry.embeds), pooled=pooled(entry.pooled), schedule=schedule)


def conditioning_concat(ctx: NodeContext, *, conditioning_to: list[CondEntry],
                        conditioning_from: list[CondEntry]) -> tuple[Any, ...]:
    """ConditioningConcat: the first `from` entry's tokens appended to each `to` entry's tokens."""
    tokens = conditioning_from[0].embeds
    return ([_map_tensors(e, lambda t: torch.cat((t, tokens.to(t.device, t.dtype)), dim=1))
             for e in conditioning_to],)


def conditioning_average(ctx: NodeContext, *, conditioning_to: list[CondEntry], conditioning_from: list[CondEntry],
                         conditioning_to_strength: float) -> tuple[Any, ...]:
    """ConditioningAverage: to · s + from · (1 - s), `from` cut or zero-padded to `to`'s token count; the
    pooled embeddings mix the same way (`to` without one takes `from`'s)."""
    source, pooled_from = conditioning_from[0].embeds, conditioning_from[0].pooled
    w = conditioning_to_strength

    def mix(t: torch.Tensor) -> torch.Tensor:
        other = source[:, : t.shape[1]].to(t.device, t.dtype)
        if other.shape[1] < t.shape[1]:
            other = torch.cat([other, other.new_zeros((1, t.shape[1] - other.shape[1], t.shape[2]))], dim=1)
        return t * w + other * (1.0 - w)

    def mix_pooled(p: torch.Tensor | None) -> torch.Tensor | None:
        if pooled_from is None:
            return p
        if p is None:
            return pooled_from
        return p * w + pooled_from.to(p.device, p.dtype) * (1.0 - w)

    return ([_map_tensors(e, mix, mix_pooled) for e in conditioning_to],)


def conditioning_zero_out(ctx: NodeContext, *, conditioning: list[CondEntry]) -> tuple[Any, ...]:
    """ConditioningZeroOut: zero token and pooled embeddings (SDXL's empty negative)."""
    return ([_map_tensors(e, torch.zeros_like, lambda p: None if p is None else torch.zeros_like(p))
             for e in conditioning],)


def conditioning_set_timestep_range(ctx: NodeContext, *, conditioning: list[CondEntry], start: float,
                                    end: float) -> tuple[Any, ...]:
    """ConditioningSetTimestepRange: the entries act only from `start` to `end` of sampling (0 = the start)."""
    return ([replace(e, start_percent=start, end_percent=end) for e in conditioning],)


def _set_region(conditioning: list[CondEntry], **changes: Any) -> list[CondEntry]:
    return [replace(e, region=replace(e.region, **changes)) for e in conditioning]


def conditioning_set_area(ctx: NodeContext, *, conditioning: list[CondEntry], width: int, height: int, x: int,
                          y: int, strength: float) -> tuple[Any, ...]:
    """ConditioningSetArea: the entries act on one rectangle (pixels, in steps of 8) with this strength."""
    return (_set_region(conditioning, area=(height // 8, width // 8, y // 8, x // 8), strength=strength,
                        set_area_to_bounds=False),)


def conditioning_set_area_percentage(ctx: NodeContext, *, conditioning: list[CondEntry], width: float,
                                     height: float, x: float, y: float, strength: float) -> tuple[Any, ...]:
    """ConditioningSetAreaPercentage: the rectangle as fractions of the image."""
    return (_set_region(conditioning, area=("percentage", height, width, y, x), strength=strength,
                        set_area_to_bounds=False),)


def conditioning_set_area_strength(ctx: NodeContext, *, conditioning: list[CondEntry],
                                   strength: float) -> tuple[Any, ...]:
    """ConditioningSetAreaStrength: the weight of the entries' predictions where they act."""
    return (_set_region(conditioning, strength=strength),)


def conditioning_set_mask(ctx: NodeContext, *, conditioning: list[CondEntry], mask: torch.Tensor, strength: float,
                          set_cond_area: str) -> tuple[Any, ...]:
    """ConditioningSetMask: the entries' predictions weighted per pixel by the mask × strength; with
    'mask bounds' the model runs on the mask's bounding box only."""
    mask = mask.reshape(-1, mask.shape[-2], mask.shape[-1])
    return (_set_region(conditioning, mask=mask, mask_strength=strength,
                        set_area_to_bounds=set_cond_area != "default"),)


def _cond(name: str) -> Any:
    return link_input(name, "CONDITIONING")


_STRENGTH = {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}
_AREA_SIZE = {"default": 64, "min": 64, "max": MAX_RESOLUTION, "step": 8}
_AREA_AT = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}
_FRACTION = {"min": 0.0, "max": 1.0, "step": 0.01}

NODES = [
    NodeDefinition(NodeSpec(
        "ConditioningConcat", (_cond("conditioning_to"), _cond("conditioning_from")), (CONDITIONING,),
        "conditioning", "Conditioning (Concat)"), conditioning_concat),
    NodeDefinition(NodeSpec(
        "ConditioningAverage",
        (_cond("conditioning_to"), _cond("conditioning_from"),
         float_input("conditioning_to_strength", default=1.0, min=0.0, max=1.0, step=0.01)),
        (CONDITIONING,), "conditioning", "Conditioning (Average)"), conditioning_average),
    NodeDefinition(NodeSpec(
        "ConditioningZeroOut", (_cond("conditioning"),), (CONDITIONING,), "advanced/conditioning",
        "ConditioningZeroOut"), conditioning_zero_out),
    NodeDefinition(NodeSpec(
        "ConditioningSetTimestepRange",
        (_cond("conditioning"), float_input("start", default=0.0, min=0.0, max=1.0, step=0.001),
         float_input("end", default=1.0, min=0.0, max=1.0, step=0.001)),
        (CONDITIONING,), "advanced/conditioning", "ConditioningSetTimestepRange"), conditioning_set_timestep_range),
    NodeDefinition(NodeSpec(
        "ConditioningSetArea",
        (_cond("conditioning"), int_input("width", **_AREA_SIZE), int_input("height", **_AREA_SIZE),
         int_input("x", **_AREA_AT), int_input("y", **_AREA_AT), float_input("strength", **_STRENGTH)),
        (CONDITIONING,), "conditioning", "Conditioning (Set Area)"), conditioning_set_area),
    NodeDefinition(NodeSpec(
        "ConditioningSetAreaPercentage",
        (_cond("conditioning"), float_input("width", default=1.0, **_FRACTION),
         float_input("height", default=1.0, **_FRACTION), float_input("x", default=0.0, **_FRACTION),
         float_input("y", default=0.0, **_FRACTION), float_input("strength", **_STRENGTH)),
        (CONDITIONING,), "conditioning", "Conditioning (Set Area with Percentage)"),
        conditioning_set_area_percentage),
    NodeDefinition(NodeSpec(
        "ConditioningSetAreaStrength", (_cond("conditioning"), float_input("strength", **_STRENGTH)),
        (CONDITIONING,), "conditioning", "ConditioningSetAreaStrength"), conditioning_set_area_strength),
    NodeDefinition(NodeSpec(
        "ConditioningSetMask",
        (_cond("conditioning"), link_input("mask", "MASK"), float_input("strength", **_STRENGTH),
         combo_input("set_cond_area", ("default", "mask bounds"))),
        (CONDITIONING,), "conditioning", "Conditioning (Set Mask)"), conditioning_set_mask),
]
