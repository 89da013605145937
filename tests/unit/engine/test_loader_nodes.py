"""CheckpointLoader's config choices mean what ComfyUI's config files mean, LoraLoader's model and CLIP
strengths act on their own side only, and UNETLoader / CLIPLoader / DualCLIPLoader on a checkpoint's parts
as separate files give the checkpoint's image (tiny SD1 and SDXL models)."""

from __future__ import annotations

import copy
import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from sdfleet.engine import ldm_keys
from sdfleet.engine.checkpoints import CONFIGS_METADATA_KEY, FAMILY_METADATA_KEY, pipeline_configs
from sdfleet.engine.executor import Engine, NodeExecutionError
from sdfleet.engine.files import DictModelFiles, ModelFile
from sdfleet.engine.tensor_file import save_safetensors
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


def _component_files(tmp_path, pipeline, family: str, *, diffusers_keys: bool) -> dict[str, ModelFile]:
    """The pipeline's UNet and text encoders as separate files, as ComfyUI users keep them."""
    metadata = {"format": "pt", FAMILY_METADATA_KEY: family,
                CONFIGS_METADATA_KEY: json.dumps(pipeline_configs(pipeline, family=family))}
    unet = pipeline.unet
    if diffusers_keys:
        unet_tensors = dict(unet.state_dict())
    else:  # bare LDM keys, no `model.diffusion_model.` prefix
        up = {i for i, block in enumerate(unet.up_blocks) if getattr(block, "attentions", None)}
        ldm = ldm_keys.unet_to_ldm(unet.state_dict(), layers_per_block=unet.config.layers_per_block,
                                   up_attention_blocks=up)
        unet_tensors = {k.removeprefix(ldm_keys.UNET_PREFIX): v for k, v in ldm.items()}
    out = {"unet": save_safetensors(unet_tensors, tmp_path / f"{family}-unet.safetensors", metadata=metadata)}
    clip_l = {f"text_model.{k}": v for k, v in pipeline.text_encoder.state_dict().items()}
    out["clip_l"] = save_safetensors(clip_l, tmp_path / f"{family}-clip-l.safetensors", metadata=metadata)
    if getattr(pipeline, "text_encoder_2", None) is not None:
        out["clip_g"] = save_safetensors(dict(pipeline.text_encoder_2.state_dict()),
                                         tmp_path / f"{family}-clip-g.safetensors", metadata=metadata)
    return {name: ModelFile(path, hashlib.sha256(path.read_bytes()).hexdigest()) for name, path in out.items()}


@pytest.mark.parametrize(("family", "diffusers_keys"), [("sd1", False), ("sdxl", True)])
def test_unet_and_clip_loaders_give_the_checkpoints_image(engine: Engine, files: DictModelFiles, tmp_path,
                                                          family, diffusers_keys) -> None:
    from sdfleet.engine.tiny import tiny_sd1_pipeline, tiny_sdxl_pipeline

    pipeline = (tiny_sd1_pipeline if family == "sd1" else tiny_sdxl_pipeline)(seed=0)
    parts = _component_files(tmp_path, pipeline, family, diffusers_keys=diffusers_keys)
    for name, file in parts.items():
        files.add_model("text_encoders" if name.startswith("clip") else "diffusion_models", f"{name}.safetensors",
                        file)
    ckpt = f"{family}.safetensors"
    base = txt2img_graph(ckpt=ckpt, steps=3)
    plain = _pixels(engine.run(base, files=files))
    graph = copy.deepcopy(base)
    graph["20"] = {"class_type": "UNETLoader", "inputs": {"unet_name": "unet.safetensors", "weight_dtype": "default"}}
    graph["21"] = {"class_type": "CLIPLoader", "inputs": {"clip_name": "clip_l.safetensors",
                                                          "type": "stable_diffusion"}} if family == "sd1" else \
        {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_g.safetensors",
                                                    "clip_name2": "clip_l.safetensors", "type": "sdxl"}}
    graph["3"]["inputs"]["model"] = ["20", 0]
    for node in ("6", "7"):
        graph[node]["inputs"]["clip"] = ["21", 0]
    np.testing.assert_array_equal(_pixels(engine.run(graph, files=files)), plain)


def test_component_loaders_refuse_files_of_the_wrong_kind(engine: Engine, files: DictModelFiles, tmp_path) -> None:
    from sdfleet.engine.checkpoints import CheckpointError
    from sdfleet.engine.tiny import tiny_sd1_pipeline

    parts = _component_files(tmp_path, tiny_sd1_pipeline(seed=0), "sd1", diffusers_keys=False)
    files.add_model("diffusion_models", "clip-as-unet.safetensors", parts["clip_l"])
    files.add_model("text_encoders", "unet-as-clip.safetensors", parts["unet"])
    graph = txt2img_graph(steps=2)
    graph["20"] = {"class_type": "UNETLoader", "inputs": {"unet_name": "clip-as-unet.safetensors",
                                                          "weight_dtype": "default"}}
    graph["3"]["inputs"]["model"] = ["20", 0]
    with pytest.raises(NodeExecutionError) as raised:
        engine.run(graph, files=files)
    assert isinstance(raised.value.error, CheckpointError) and raised.value.node_id == "20"
    graph = txt2img_graph(steps=2)
    graph["21"] = {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "unet-as-clip.safetensors",
                                                              "clip_name2": "unet-as-clip.safetensors",
                                                              "type": "sdxl"}}
    graph["6"]["inputs"]["clip"] = ["21", 0]
    with pytest.raises(NodeExecutionError, match="not a CLIP text encoder"):
        engine.run(graph, files=files)
