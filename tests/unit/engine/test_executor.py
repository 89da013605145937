"""Run-time behaviour: node-output cache, model cache, progress events, cancellation, PNG chunks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from sdfleet.engine.events import Cancelled, NodeCached, NodeOutput, NodeStarted, Progress
from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles
from sdfleet.engine.image_admission import read_png_text
from sdfleet.engine.infotext import parse_infotext
from sdfleet.engine.model_cache import ModelCache
from tests.unit.engine.conftest import txt2img_graph


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_identical_graph_returns_from_cache_and_new_seed_skips_encoding(files: DictModelFiles) -> None:
    engine = Engine()
    first = engine.run(txt2img_graph(seed=1), files=files)
    assert set(first.executed) == {"3", "4", "5", "6", "7", "8", "9"}
    events: list = []
    again = engine.run(txt2img_graph(seed=1), files=files, on_event=events.append)
    assert again.executed == [] and again.images == first.images
    assert isinstance(events[0], NodeCached) and isinstance(events[-1], NodeOutput)
    reseeded = engine.run(txt2img_graph(seed=2), files=files)
    assert sorted(reseeded.executed) == ["3", "8", "9"]  # prompts not re-encoded, model not reloaded
    assert reseeded.images[0].png != first.images[0].png
    assert engine.models.loads == 1


def test_progress_events_and_preview(files: DictModelFiles) -> None:
    events: list = []
    Engine().run(txt2img_graph(steps=3), files=files, on_event=events.append, preview=True)
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(p.node_id, p.value, p.max) for p in progress] == [("3", 1, 3), ("3", 2, 3), ("3", 3, 3)]
    assert all(p.preview_png and p.preview_png.startswith(b"\x89PNG") for p in progress)
    assert [e.node_id for e in events if isinstance(e, NodeStarted)][-1] == "9"


def test_cancellation_between_steps(files: DictModelFiles) -> None:
    steps_seen: list[int] = []

    def on_event(event) -> None:
        if isinstance(event, Progress):
            steps_seen.append(event.value)

    with pytest.raises(Cancelled) as info:
        Engine().run(txt2img_graph(steps=10), files=files, on_event=on_event,
                     should_cancel=lambda: len(steps_seen) >= 2)
    assert info.value.node_id == "3"
    assert steps_seen == [1, 2]


def test_png_carries_infotext_and_graph(files: DictModelFiles) -> None:
    graph = txt2img_graph(seed=77, steps=3, sampler="dpmpp_2m", scheduler="karras")
    result = Engine().run(graph, files=files)
    chunks = read_png_text(result.images[0].png)
    assert json.loads(chunks["prompt"]) == graph
    info = parse_infotext(chunks["parameters"])
    assert info.prompt == "a red cat" and info.negative_prompt == "blurry"
    assert info.params["Seed"] == "77" and info.params["Steps"] == "3"
    assert info.params["Sampler"] == "DPM++ 2M" and info.params["Schedule type"] == "Karras"
    assert info.params["Size"] == "64x64"
    assert info.params["Model hash"] == files.model_path("checkpoints", "sd1.safetensors").sha256[:10]


def test_same_seed_same_image_across_engines(files: DictModelFiles) -> None:
    a = Engine().run(txt2img_graph(seed=9, batch=2), files=files)
    b = Engine().run(txt2img_graph(seed=9, batch=2), files=files)
    assert [i.png for i in a.images] == [i.png for i in b.images]
    assert a.images[0].png != a.images[1].png


def test_ksampler_advanced_two_stage_equals_single_run(files: DictModelFiles) -> None:
    engine = Engine()
    single = engine.run(txt2img_graph(seed=4, steps=4), files=files)
    graph = txt2img_graph(seed=4, steps=4)
    common = {k: graph["3"]["inputs"][k] for k in ("model", "cfg", "sampler_name", "scheduler", "positive",
                                                   "negative")}
    graph["3"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **common, "add_noise": "enable", "noise_seed": 4, "steps": 4, "latent_image": ["5", 0], "start_at_step": 0,
        "end_at_step": 2, "return_with_leftover_noise": "enable"}}
    graph["30"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **common, "add_noise": "disable", "noise_seed": 4, "steps": 4, "latent_image": ["3", 0],
        "start_at_step": 2, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    graph["8"]["inputs"]["samples"] = ["30", 0]
    split = engine.run(graph, files=files)
    assert np.array_equal(_pixels(split.images[0].png), _pixels(single.images[0].png))


def test_model_cache_evicts_least_recently_used() -> None:
    cache = ModelCache(budget_bytes=3000)
    make = lambda: torch.nn.Linear(10, 25)  # noqa: E731  (275 floats = 1100 bytes)
    cache.get_or_load("a", make)
    cache.get_or_load("b", make)
    cache.unpin_all()
    cache.get_or_load("a", make)  # a becomes most recent
    cache.get_or_load("c", make)  # over budget: b goes
    assert cache.keys() == ["a", "c"] and cache.evictions == ["b"]
    assert cache.loads == 3


def test_sdxl_with_clip_skip_and_combined_conditioning_runs(files: DictModelFiles) -> None:
    graph = txt2img_graph(ckpt="sdxl.safetensors", steps=2)
    graph["12"] = {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["4", 1], "stop_at_clip_layer": -1}}
    graph["13"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "sunset", "clip": ["12", 0]}}
    graph["14"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0],
                                                                    "conditioning_2": ["13", 0]}}
    graph["3"]["inputs"]["positive"] = ["14", 0]
    plain = Engine().run(txt2img_graph(ckpt="sdxl.safetensors", steps=2), files=files)
    combined = Engine().run(graph, files=files)
    assert combined.images[0].png != plain.images[0].png


def test_preview_interval_limits_preview_encoding(files: DictModelFiles) -> None:
    events: list = []
    Engine().run(txt2img_graph(steps=5), files=files, on_event=events.append, preview=True, preview_interval=60.0)
    progress = [e for e in events if isinstance(e, Progress)]
    assert len(progress) == 5
    assert [bool(p.preview_png) for p in progress] == [True, False, False, False, False]
