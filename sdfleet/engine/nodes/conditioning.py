"""Conditioning nodes: text encoding, CLIP layer choice, combining, ControlNet application."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from sdfleet.engine.embedding_names import SUFFIXES, embedding_name
from sdfleet.engine.files import ModelFiles
from sdfleet.engine.model_loader import Checkpoint, ClipRef, ControlNetRef, VaeRef
from sdfleet.engine.node_registry import (
    InputSpec,
    NodeDefinition,
    NodeSpec,
    OutputSpec,
    combo_input,
    float_input,
    int_input,
    link_input,
)
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.nodes.latent import MAX_RESOLUTION
from sdfleet.engine.prompt_schedule import prompt_schedule
from sdfleet.engine.text_encoding import encode_a1111, encode_comfy, encoders_for
from sdfleet.engine.textual_inversion import Embedding


@dataclass(frozen=True)
class ControlApplication:
    """A ControlNet attached to a conditioning: hint image [B,H,W,C] in 0..1, strength and step range."""

    control_net: ControlNetRef
    image: torch.Tensor
    strength: float
    start_percent: float
    end_percent: float
    #: A1111 control modes other than Balanced: the extension's "soft injection" (residual i of 13 scaled by
    #: 0.825 ** (12 - i)) and, for "ControlNet is more important", control on the positive prompt's rows only
    soft: bool = False
    positive_only: bool = False


@dataclass(frozen=True)
class ScheduledCond:
    """A1111 prompt editing: the conditioning used while the sampler's step is at most `until_step`."""

    until_step: int
    embeds: torch.Tensor
    pooled: torch.Tensor | None = None


@dataclass(frozen=True)
class Region:
    """Where a conditioning applies and how strongly (ComfyUI's area and mask conditioning).

    `area` is (height, width, y, x) in latent pixels, or ("percentage", height, width, y, x) as fractions of
    the latent; `mask` [B, H, W] weights the prediction per pixel (resized to the latent when sampling);
    with `set_area_to_bounds` the model runs only on the mask's bounding box. A plain entry applies
    everywhere with weight 1."""

    area: tuple | None = None
    strength: float = 1.0
    mask: torch.Tensor | None = None
    mask_strength: float = 1.0
    set_area_to_bounds: bool = False

    @property
    def plain(self) -> bool:
        """True when the entry covers the whole latent with weight 1."""
        return self.area is None and self.mask is None and self.strength == 1.0


@dataclass(frozen=True)
class SizeConditioning:
    """SDXL's micro-conditioning as CLIPTextEncodeSDXL / CLIPTextEncodeSDXLRefiner set it; a None size is
    the image's own size, a None aesthetic score the refiner's default (6 positive, 2.5 negative)."""

    width: int | None = None
    height: int | None = None
    crop_w: int = 0
    crop_h: int = 0
    target_width: int | None = None
    target_height: int | None = None
    aesthetic_score: float | None = None


PLAIN = Region()


@dataclass(frozen=True)
class CondEntry:
    """One conditioning: token embeddings [1, tokens, dim], SDXL pooled embedding, optional ControlNet.

    An A1111 prompt with `[from:to:when]` or `[a|b]` carries a `schedule`; `embeds`/`pooled` are then its
    first entry. The sampler asks `at_step(step)` before each guided model evaluation. An entry may also
    apply to part of a run only, as ComfyUI's ConditioningSetTimestepRange: from `start_percent` to
    `end_percent` of sampling (0 = the start, compared in sigma); the sampler skips it elsewhere."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    control: ControlApplication | None = None
    schedule: tuple[ScheduledCond, ...] = ()
    start_percent: float = 0.0
    end_percent: float = 1.0
    region: Region = PLAIN
    size: SizeConditioning | None = None

    def at_step(self, step: int) -> CondEntry:
        """This entry at `step`, the number of guided model evaluations made before this one (0 first).

        As A1111: the first scheduled conditioning whose `until_step` is at least `step`; past the last
        one (second-order samplers evaluate more often than the schedule counts) the first again."""
        if not self.schedule:
            return self
        chosen = next((s for s in self.schedule if step <= s.until_step), self.schedule[0])
        return replace(self, embeds=chosen.embeds, pooled=chosen.pooled, schedule=())


def conds_at(entries: Sequence[CondEntry], step: int) -> list[CondEntry]:
    """Every entry of a conditioning as the sampler uses it at `step` (see CondEntry.at_step)."""
    return [entry.at_step(step) for entry in entries]


def _find_embedding(ctx: NodeContext) -> Callable[[str], Embedding | None]:
    """ComfyUI's `embedding:name` lookup: the name as given, else with a known suffix."""
    def find(name: str) -> Embedding | None:
        for candidate in (name, *(name + suffix for suffix in SUFFIXES)):
            try:
                file = ctx.files.model_path("embeddings", candidate)
            except KeyError:
                continue
            return ctx.models.embedding(file, name=embedding_name(candidate))
        return None
    return find


def _all_embeddings(ctx: NodeContext) -> list[Embedding]:
    """Every embedding available to the job, by name (A1111 finds them in the prompt's tokens)."""
    found: dict[str, Embedding] = {}
    for file_name in ctx.files.model_names("embeddings"):
        name = embedding_name(file_name)
        if name not in found:
            found[name] = ctx.models.embedding(ctx.files.model_path("embeddings", file_name), name=name)
    return list(found.values())


def _embedding_fingerprint(files: ModelFiles, inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """The embeddings a prompt may use are part of its cache key."""
    names = files.model_names("embeddings")
    return [(name, files.model_path("embeddings", name).sha256) for name in names]


def encode_text(ckpt: Checkpoint, text: str, *, stop_at_layer: int | None, device: torch.device,
                find_embedding: Callable[[str], Embedding | None] = lambda name: None) -> CondEntry:
    """Encode a prompt as ComfyUI's CLIPTextEncode does (CLIPSetLastLayer's index picks the hidden state)."""
    encoders = encoders_for(ckpt, dialect="comfy", stop_at_layer=stop_at_layer)
    encoded = encode_comfy(encoders, text, find_embedding=find_embedding, device=device)
    return CondEntry(encoded.embeds.to(dtype=encoders[0].model.dtype), encoded.pooled)


def clip_text_encode(ctx: NodeContext, *, text: str, clip: ClipRef) -> tuple[Any, ...]:
    """CLIPTextEncode: ComfyUI's weighting and chunking, `embedding:name` textual inversions."""
    ckpt = ctx.models.checkpoint(clip.checkpoint)
    ctx.models.apply_clip_loras(ckpt, clip.loras)
    return ([encode_text(ckpt, text, stop_at_layer=clip.stop_at_layer, device=ctx.device,
                         find_embedding=_find_embedding(ctx))],)


def clip_text_encode_sdxl(ctx: NodeContext, *, clip: ClipRef, width: int, height: int, crop_w: int, crop_h: int,
                          target_width: int, target_height: int, text_g: str, text_l: str) -> tuple[Any, ...]:
    """CLIPTextEncodeSDXL: text_l through CLIP-L, text_g through OpenCLIP-G, and SDXL's size conditioning."""
    ckpt = ctx.models.checkpoint(clip.checkpoint)
    ctx.models.apply_clip_loras(ckpt, clip.loras)
    encoders = encoders_for(ckpt, dialect="comfy", stop_at_layer=clip.stop_at_layer)
    if len(encoders) != 2:
        raise ValueError("CLIPTextEncodeSDXL needs an SDXL base CLIP (CLIP-L and OpenCLIP-G); "
                         f"this {ckpt.family} CLIP has {len(encoders)} text encoder(s)")
    encoded = encode_comfy(encoders, [text_l, text_g], find_embedding=_find_embedding(ctx), device=ctx.device)
    size = SizeConditioning(width=width, height=height, crop_w=crop_w, crop_h=crop_h, target_width=target_width,
                            target_height=target_height)
    return ([CondEntry(encoded.embeds.to(dtype=encoders[0].model.dtype), encoded.pooled, size=size)],)


def clip_text_encode_sdxl_refiner(ctx: NodeContext, *, ascore: float, width: int, height: int, text: str,
                                  clip: ClipRef) -> tuple[Any, ...]:
    """CLIPTextEncodeSDXLRefiner: the prompt plus the refiner's aesthetic score and image size."""
    ckpt = ctx.models.checkpoint(clip.checkpoint)
    ctx.models.apply_clip_loras(ckpt, clip.loras)
    entry = encode_text(ckpt, text, stop_at_layer=clip.stop_at_layer, device=ctx.device,
                        find_embedding=_find_embedding(ctx))
    return ([replace(entry, size=SizeConditioning(width=width, height=height, aesthetic_score=ascore))],)


def _a1111_entry(encoders: list, text: str, *, steps: int, hires_steps: int, embeddings: list[Embedding],
                 device: torch.device, negative: bool) -> CondEntry:
    schedule = prompt_schedule(text, steps, hires_steps=hires_steps or None)
    encoded = encode_a1111(encoders, [s.text for s in schedule], embeddings=embeddings, device=device,
                           zero_if_empty=negative)
    dtype = encoders[0].model.dtype
    entries = tuple(ScheduledCond(s.until_step, e.embeds.to(dtype=dtype), e.pooled)
                    for s, e in zip(schedule, encoded, strict=True))
    return CondEntry(entries[0].embeds, entries[0].pooled, schedule=entries if len(entries) > 1 else ())


def a1111_prompt(ctx: NodeContext, *, clip: ClipRef, prompt: str, negative_prompt: str, steps: int,
                 hires_steps: int = 0) -> tuple[Any, ...]:
    """A1111Prompt: A1111's emphasis, BREAK, prompt editing and textual inversions, for a prompt pair.

    `hires_steps` > 0: the prompts of a hires-fix second pass of that many steps, after `steps`."""
    ckpt = ctx.models.checkpoint(clip.checkpoint)
    ctx.models.apply_clip_loras(ckpt, clip.loras)
    encoders = encoders_for(ckpt, dialect="a1111", stop_at_layer=clip.stop_at_layer)
    embeddings = _all_embeddings(ctx)
    common = {"steps": steps, "hires_steps": hires_steps, "embeddings": embeddings, "device": ctx.device}
    positive = _a1111_entry(encoders, prompt, negative=False, **common)
    negative = _a1111_entry(encoders, negative_prompt, negative=True, **common)
    return [positive], [negative]


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


#: sd-webui-controlnet's control modes (`external_code.ControlMode`), in the order of their API numbers
CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")


def controlnet_apply_a1111(ctx: NodeContext, *, positive: list[CondEntry], negative: list[CondEntry],
                           control_net: ControlNetRef, image: torch.Tensor, strength: float, start_percent: float,
                           end_percent: float, control_mode: str) -> tuple[Any, ...]:
    """ControlNetApplyA1111: ControlNetApplyAdvanced with the A1111 extension's control mode."""
    if strength == 0:
        return positive, negative
    control = ControlApplication(control_net, image, strength, start_percent, end_percent,
                                 soft=control_mode != CONTROL_MODES[0], positive_only=control_mode == CONTROL_MODES[2])
    return [replace(e, control=control) for e in positive], [replace(e, control=control) for e in negative]



#: what ComfyUI's Apply ControlNet (Advanced) and sdfleet's A1111 variant both take
_CONTROLNET_APPLY_INPUTS = (
    link_input("positive", "CONDITIONING"), link_input("negative", "CONDITIONING"),
    link_input("control_net", "CONTROL_NET"), link_input("image", "IMAGE"),
    float_input("strength", default=1.0, min=0.0, max=10.0, step=0.01),
    float_input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001),
    float_input("end_percent", default=1.0, min=0.0, max=1.0, step=0.001),
)

NODES = [
    NodeDefinition(NodeSpec(
        "CLIPTextEncode",
        (InputSpec("text", "STRING", default="", multiline=True), link_input("clip", "CLIP")),
        (OutputSpec("CONDITIONING", "CONDITIONING"),), "conditioning", "CLIP Text Encode (Prompt)"),
        clip_text_encode, _embedding_fingerprint),
    NodeDefinition(NodeSpec(
        "CLIPTextEncodeSDXL",
        (link_input("clip", "CLIP"), int_input("width", default=1024, min=0, max=MAX_RESOLUTION),
         int_input("height", default=1024, min=0, max=MAX_RESOLUTION),
         int_input("crop_w", default=0, min=0, max=MAX_RESOLUTION),
         int_input("crop_h", default=0, min=0, max=MAX_RESOLUTION),
         int_input("target_width", default=1024, min=0, max=MAX_RESOLUTION),
         int_input("target_height", default=1024, min=0, max=MAX_RESOLUTION),
         InputSpec("text_g", "STRING", multiline=True), InputSpec("text_l", "STRING", multiline=True)),
        (OutputSpec("CONDITIONING", "CONDITIONING"),), "advanced/conditioning", "CLIPTextEncodeSDXL"),
        clip_text_encode_sdxl, _embedding_fingerprint),
    NodeDefinition(NodeSpec(
        "CLIPTextEncodeSDXLRefiner",
        (float_input("ascore", default=6.0, min=0.0, max=1000.0, step=0.01),
         int_input("width", default=1024, min=0, max=MAX_RESOLUTION),
         int_input("height", default=1024, min=0, max=MAX_RESOLUTION),
         InputSpec("text", "STRING", multiline=True), link_input("clip", "CLIP")),
        (OutputSpec("CONDITIONING", "CONDITIONING"),), "advanced/conditioning", "CLIPTextEncodeSDXLRefiner"),
        clip_text_encode_sdxl_refiner, _embedding_fingerprint),
    NodeDefinition(NodeSpec(
        "A1111Prompt",
        (link_input("clip", "CLIP"), InputSpec("prompt", "STRING", default="", multiline=True),
         InputSpec("negative_prompt", "STRING", default="", multiline=True),
         InputSpec("steps", "INT", default=20, min=1, max=10000, step=1,
                   tooltip="the steps prompt editing counts: the sampler's steps, twice them for "
                           "second-order samplers, as A1111 counts"),
         InputSpec("hires_steps", "INT", default=0, min=0, max=10000, step=1, optional=True,
                   tooltip="for a hires-fix second pass: its steps (prompt editing then counts from the "
                           "end of the first pass); 0 for a first pass")),
        (OutputSpec("CONDITIONING", "positive"), OutputSpec("CONDITIONING", "negative")), "conditioning",
        "A1111 Prompt",
        "A prompt and negative prompt read as A1111 reads them: (emphasis), [de-emphasis], (x:w), BREAK, "
        "[from:to:when] prompt editing, [a|b] alternation and textual-inversion embeddings by name."),
        a1111_prompt, _embedding_fingerprint),
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
        (*_CONTROLNET_APPLY_INPUTS, link_input("vae", "VAE", optional=True)),
        (OutputSpec("CONDITIONING", "positive"), OutputSpec("CONDITIONING", "negative")),
        "conditioning/controlnet", "Apply ControlNet"), controlnet_apply_advanced),
    NodeDefinition(NodeSpec(
        "ControlNetApplyA1111",
        (*_CONTROLNET_APPLY_INPUTS, combo_input("control_mode", CONTROL_MODES)),
        (OutputSpec("CONDITIONING", "positive"), OutputSpec("CONDITIONING", "negative")),
        "conditioning/controlnet", "Apply ControlNet (A1111)",
        "A ControlNet unit as A1111's ControlNet extension applies it: Balanced, or its soft weights for "
        "'My prompt is more important', and on the prompt's side of the guidance only for 'ControlNet is more "
        "important'."), controlnet_apply_a1111),
]
