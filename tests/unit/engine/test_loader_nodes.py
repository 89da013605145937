"""CheckpointLoader's config choices mean what ComfyUI's config files mean, and LoraLoader's model and CLIP
strengths act on their own side only (tiny SD1 model and LoRA)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from PIL import Image

from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles
from tests.unit.engine.conftest import txt2img_graph


def _pixels(result) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(i.png)).convert("RGB")).astype(int) for i in result.images])


def _with_loader(graph: dict, loader: dict) -> dict:
    graph = copy.deepcopy(graph)
    graph["4"] = loader
    return graph


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def test_checkpoint_loader_configs(engine: Engine, files: DictModelFiles) -> None:
    base = txt2img_graph(steps=3)
    plain = _pixels(engine.run(base, files=files))

    def with_config(name: str) -> np.ndarray:
        return _pixels(engine.run(_with_loader(base, {"class_type": "CheckpointLoader", "inputs": {
            "config_name": name, "ckpt_name": "sd1.safetensors"}}), files=files))

    np.testing.assert_array_equal(with_config("v1-inference.yaml"), plain)

    v_graph = copy.deepcopy(base)
    v_graph["30"] = {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["4", 0], "sampling": "v_prediction",
                                                                      "zsnr": False}}
    v_graph["3"]["inputs"]["model"] = ["30", 0]
    as_v = _pixels(engine.run(v_graph, files=files))
    assert np.abs(as_v - plain).mean() > 3
    np.testing.assert_array_equal(with_config("v2-inference-v.yaml"), as_v)

    skip_graph = copy.deepcopy(base)
    skip_graph["31"] = {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["4", 1], "stop_at_clip_layer": -2}}
    for node in ("6", "7"):
        skip_graph[node]["inputs"]["clip"] = ["31", 0]
    skipped = _pixels(engine.run(skip_graph, files=files))
    assert np.abs(skipped - plain).mean() > 1
    np.testing.assert_array_equal(with_config("v1-inference_clip_skip_2.yaml"), skipped)


def test_lora_loader_model_and_clip_strengths_act_separately(engine: Engine, files: DictModelFiles) -> None:
    base = txt2img_graph(steps=3)

    def with_lora(model: float, clip: float) -> np.ndarray:
        graph = copy.deepcopy(base)
        graph["10"] = {"class_type": "LoraLoader", "inputs": {
            "model": ["4", 0], "clip": ["4", 1], "lora_name": "style.safetensors", "strength_model": model,
            "strength_clip": clip}}
        graph["3"]["inputs"]["model"] = ["10", 0]
        for node in ("6", "7"):
            graph[node]["inputs"]["clip"] = ["10", 1]
        return _pixels(engine.run(graph, files=files))

    plain = _pixels(engine.run(base, files=files))
    np.testing.assert_array_equal(with_lora(0.0, 0.0), plain)
    model_only_graph = copy.deepcopy(base)
    model_only_graph["11"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": ["4", 0], "lora_name": "style.safetensors", "strength_model": 1.0}}
    model_only_graph["3"]["inputs"]["model"] = ["11", 0]
    model_side = with_lora(1.0, 0.0)
    np.testing.assert_array_equal(model_side, _pixels(engine.run(model_only_graph, files=files)))
    clip_side, both = with_lora(0.0, 1.0), with_lora(1.0, 1.0)
    for a, b in ((model_side, plain), (clip_side, plain), (both, model_side), (both, clip_side)):
        assert np.abs(a - b).mean() > 1
