"""A1111 infotext (the PNG `parameters` chunk): building it from a graph, parsing it, writing PNGs."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from sdfleet.engine.files import ModelFiles
from sdfleet.engine.sampler_names import a1111_labels, to_a1111

VERSION = "sdfleet"
_PAIR = re.compile(r'\s*(\w[\w \-/+()]*):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


@dataclass
class Infotext:
    """Generation parameters in A1111's vocabulary."""

    prompt: str
    negative_prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        """The text A1111 writes: prompt line, `Negative prompt:` line, then `Key: value, …`."""
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        pairs = []
        for key, value in self.params.items():
            text = str(value)
            if "," in text or ":" in text or '"' in text:
                text = json.dumps(text)
            pairs.append(f"{key}: {text}")
        lines.append(", ".join(pairs))
        return "\n".join(lines)


def parse_infotext(text: str) -> Infotext:
    """Parse A1111 infotext back into prompt, negative prompt and parameters."""
    lines = text.strip().split("\n")
    last = lines[-1] if lines else ""
    params: dict[str, str] = {}
    if len(_PAIR.findall(last)) >= 3:
        lines = lines[:-1]
        for key, value in _PAIR.findall(last):
            value = value.strip()
            if value.startswith('"') and value.endswith('"'):
                value = json.loads(value)
            params[key.strip()] = value
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    return Infotext("\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip(), params)


def encode_png(image: np.ndarray, *, text_chunks: Mapping[str, str], compress_level: int = 4) -> bytes:
    """A PNG of an HxWx3 uint8 array carrying the given tEXt chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in text_chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", pnginfo=info, compress_level=compress_level)
    return buffer.getvalue()


# Building infotext from a graph -----------------------------------------------------------------

_SAMPLERS = ("KSampler", "KSamplerAdvanced", "KSamplerA1111")
_UPSTREAM = ("images", "image", "samples", "pixels", "latent_image", "source")


def _source(graph: Mapping[str, Any], value: Any) -> tuple[str, dict] | None:
    if isinstance(value, list) and len(value) == 2 and str(value[0]) in graph:
        node = graph[str(value[0])]
        return str(value[0]), node
    return None


def _find_upstream_link(graph: Mapping[str, Any], value: Any, classes: tuple[str, ...],
                        through: tuple[str, ...]) -> tuple[dict, Any] | None:
    """Follow links from `value` through nodes whose first-linked input leads on, until a node of `classes`;
    return that node and the link that reached it."""
    seen: set[str] = set()
    while True:
        found = _source(graph, value)
        if found is None or found[0] in seen:
            return None
        node_id, node = found
        seen.add(node_id)
        if node.get("class_type") in classes:
            return node, value
        inputs = node.get("inputs", {})
        if "positive" in inputs and "negative" in inputs and value[1] == 1:  # ControlNetApplyAdvanced's negative
            value = inputs["negative"]
        else:
            value = next((inputs[name] for name in through if name in inputs), None)
        if value is None:
            return None


def _find_upstream(graph: Mapping[str, Any], value: Any, classes: tuple[str, ...],
                   through: tuple[str, ...]) -> dict | None:
    found = _find_upstream_link(graph, value, classes, through)
    return found[0] if found else None


_TEXT_NODES = ("CLIPTextEncode", "A1111Prompt", "CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner")
_CONDITIONING_THROUGH = ("conditioning_1", "positive", "conditioning", "conditioning_to")


def _text_of(graph: Mapping[str, Any], value: Any) -> str:
    found = _find_upstream_link(graph, value, _TEXT_NODES, _CONDITIONING_THROUGH)
    if found is None:
        return ""
    node, link = found
    if node.get("class_type") == "A1111Prompt":
        text = node["inputs"].get("negative_prompt" if link[1] == 1 else "prompt")
    elif node.get("class_type") == "CLIPTextEncodeSDXL":
        text = node["inputs"].get("text_g")
    else:
        text = node["inputs"].get("text")
    return text if isinstance(text, str) else ""


def _sampler_of(graph: Mapping[str, Any], save_node_id: str) -> dict | None:
    save = graph.get(save_node_id, {})
    return _find_upstream(graph, save.get("inputs", {}).get("images"), _SAMPLERS, _UPSTREAM)


def image_seed(graph: Mapping[str, Any], save_node_id: str, index: int) -> int | None:
    """The seed image `index` of a save node was made with (A1111 numbering on KSamplerA1111), or None."""
    sampler = _sampler_of(graph, save_node_id)
    if sampler is None:
        return None
    inputs = sampler["inputs"]
    seed = inputs.get("seed", inputs.get("noise_seed"))
    if not isinstance(seed, int):
        return None
    if sampler.get("class_type") == "KSamplerA1111" and not inputs.get("subseed_strength"):
        return seed + index
    return seed


def infotext_for(graph: Mapping[str, Any], save_node_id: str, *, files: ModelFiles | None,
                 width: int, height: int, index: int = 0) -> str | None:
    """A1111 infotext describing how image `index` of `save_node_id` was made, or None if no sampler feeds it."""
    sampler = _sampler_of(graph, save_node_id)
    if sampler is None:
        return None
    is_a1111 = sampler.get("class_type") == "KSamplerA1111"
    hires = _hires_infotext(sampler) if is_a1111 else {}
    if hires:
        # a hires-fix second pass: the infotext describes the first pass and adds A1111's Hires keys
        first = _find_upstream(graph, sampler["inputs"].get("latent_image"), ("KSamplerA1111",), _UPSTREAM)
        empty = first and _find_upstream(graph, first["inputs"].get("latent_image"), ("EmptyLatentImage",),
                                         _UPSTREAM)
        if empty:
            sampler = first
            width, height = empty["inputs"].get("width", width), empty["inputs"].get("height", height)
    inputs = sampler["inputs"]
    labels = a1111_labels if is_a1111 else to_a1111
    name, schedule = labels(str(inputs.get("sampler_name")), str(inputs.get("scheduler")))
    params: dict[str, Any] = {
        "Steps": inputs.get("steps"),
        "Sampler": name,
        "Schedule type": schedule,
        "CFG scale": inputs.get("cfg"),
        "Seed": image_seed(graph, save_node_id, index),
        "Size": f"{width}x{height}",
    }
    if is_a1111:
        params.update(_variation_params(inputs, index))
    prompt = _text_of(graph, inputs.get("positive"))
    negative = _text_of(graph, inputs.get("negative"))
    loras: list[tuple[str, float]] = []
    model_value = inputs.get("model")
    ckpt_name = None
    seen: set[str] = set()
    while (found := _source(graph, model_value)) and found[0] not in seen:
        seen.add(found[0])
        node = found[1]
        node_inputs = node.get("inputs", {})
        if node.get("class_type") in ("LoraLoader", "LoraLoaderModelOnly"):
            loras.append((str(node_inputs.get("lora_name")), float(node_inputs.get("strength_model", 1.0))))
        if node.get("class_type") == "CheckpointLoaderSimple":
            ckpt_name = node_inputs.get("ckpt_name")
            break
        model_value = node_inputs.get("model")
    if isinstance(ckpt_name, str):
        if files is not None:
            try:
                params["Model hash"] = files.model_path("checkpoints", ckpt_name).sha256[:10]
            except KeyError:
                pass
        params["Model"] = ckpt_name.rsplit(".", 1)[0]
    if isinstance(inputs.get("denoise"), (int, float)) and inputs["denoise"] < 1:
        params["Denoising strength"] = inputs["denoise"]
    if "Denoising strength" in hires:
        params["Denoising strength"] = hires["Denoising strength"]
    if isinstance(inputs.get("noise_multiplier"), (int, float)) and inputs["noise_multiplier"] != 1:
        params["Noise multiplier"] = inputs["noise_multiplier"]
    clip_layer = _find_upstream(graph, _clip_link(graph, inputs.get("positive")), ("CLIPSetLastLayer",),
                                ("clip",))
    if clip_layer and isinstance(clip_layer["inputs"].get("stop_at_clip_layer"), int):
        params["Clip skip"] = -clip_layer["inputs"]["stop_at_clip_layer"]
    params.update({k: v for k, v in hires.items() if k != "Denoising strength"})
    if loras:
        stems = [(n.rsplit(".", 1)[0], w) for n, w in reversed(loras)]
        prompt = prompt + "".join(f" <lora:{stem}:{w:g}>" for stem, w in stems)
        if files is not None:
            hashes = []
            for (stem, _), (name, _) in zip(stems, reversed(loras), strict=True):
                try:
                    hashes.append(f"{stem}: {files.model_path('loras', name).sha256[:12]}")
                except KeyError:
                    pass
            if hashes:
                params["Lora hashes"] = ", ".join(hashes)
    params["Version"] = VERSION
    return Infotext(prompt.strip(), negative, {k: str(v) for k, v in params.items() if v is not None}).render()


def _hires_infotext(sampler: Mapping[str, Any]) -> dict[str, str]:
    """The Hires keys the A1111 compiler recorded on a second-pass sampler (`_meta.infotext`)."""
    meta = sampler.get("_meta")
    found = meta.get("infotext") if isinstance(meta, Mapping) else None
    if not isinstance(found, Mapping):
        return {}
    return {str(k): str(v) for k, v in found.items() if isinstance(v, (str, int, float))}


def _variation_params(inputs: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A1111's variation-seed and seed-resize infotext keys, when they are in use."""
    params: dict[str, Any] = {}
    strength = inputs.get("subseed_strength")
    if isinstance(strength, (int, float)) and strength > 0 and isinstance(inputs.get("subseed"), int):
        params["Variation seed"] = inputs["subseed"] + index
        params["Variation seed strength"] = strength
    resize_w, resize_h = inputs.get("seed_resize_from_w"), inputs.get("seed_resize_from_h")
    if isinstance(resize_w, int) and isinstance(resize_h, int) and resize_w > 0 and resize_h > 0:
        params["Seed resize from"] = f"{resize_w}x{resize_h}"
    return params


def _clip_link(graph: Mapping[str, Any], positive: Any) -> Any:
    node = _find_upstream(graph, positive, _TEXT_NODES, _CONDITIONING_THROUGH)
    return node["inputs"].get("clip") if node else None
