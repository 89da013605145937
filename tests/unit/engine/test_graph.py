"""Graph validation reports problems per node before anything runs; object_info has ComfyUI's shape."""

from __future__ import annotations

import pytest

from sdfleet.engine.executor import Engine, object_info
from sdfleet.engine.graph import GraphValidationError
from tests.unit.engine.conftest import txt2img_graph


def _errors(graph: dict, **kwargs) -> dict[str, list[tuple[str, str | None]]]:
    with pytest.raises(GraphValidationError) as info:
        Engine().validate(graph, **kwargs)
    return {node: [(e.type, e.input_name) for e in errs] for node, errs in info.value.node_errors.items()}


def test_valid_graph_orders_only_nodes_feeding_outputs() -> None:
    graph = txt2img_graph()
    graph["99"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    parsed = Engine().validate(graph)
    assert parsed.outputs == ["9"]
    assert "99" not in parsed.order
    assert parsed.order.index("4") < parsed.order.index("6") < parsed.order.index("3") < parsed.order.index("9")


def test_each_kind_of_problem_is_reported_on_its_node() -> None:
    graph = txt2img_graph()
    graph["3"]["inputs"]["steps"] = 0                       # below min
    graph["3"]["inputs"]["cfg"] = "high"                    # wrong type
    graph["3"]["inputs"]["sampler_name"] = "warp"           # not in list
    graph["5"]["inputs"]["bogus"] = 1                       # extra input
    del graph["5"]["inputs"]["height"]                      # missing input
    graph["6"]["inputs"]["clip"] = ["42", 0]                # missing node
    graph["7"]["inputs"]["clip"] = ["4", 7]                 # missing output
    graph["8"]["inputs"]["vae"] = ["4", 0]                  # MODEL into VAE
    graph["50"] = {"class_type": "NoSuchNode", "inputs": {}}  # unknown class
    errors = _errors(graph)
    assert ("value_smaller_than_min", "steps") in errors["3"]
    assert ("invalid_input_type", "cfg") in errors["3"]
    assert ("value_not_in_list", "sampler_name") in errors["3"]
    assert ("unknown_input", "bogus") in errors["5"]
    assert ("required_input_missing", "height") in errors["5"]
    assert errors["6"] == [("bad_linked_input", "clip")]
    assert errors["7"] == [("bad_linked_input", "clip")]
    assert errors["8"] == [("return_type_mismatch", "vae")]
    assert errors["50"] == [("missing_node_type", None)]


def test_cycle_names_the_node_that_closes_it() -> None:
    graph = txt2img_graph()
    graph["10"] = {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0], "upscale_method": "bilinear",
                                                               "scale_by": 1.0}}
    graph["3"]["inputs"]["latent_image"] = ["10", 0]
    with pytest.raises(GraphValidationError) as info:
        Engine().validate(graph)
    assert list(info.value.node_errors) == ["10"]
    assert "closes a cycle" in info.value.node_errors["10"][0].message


def test_every_sampler_pairs_with_every_scheduler_and_unknown_names_are_refused() -> None:
    from sdfleet.engine.samplers import sampler_names, scheduler_names

    engine = Engine()
    for sampler in sampler_names():
        for scheduler in scheduler_names():
            engine.validate(txt2img_graph(sampler=sampler, scheduler=scheduler))
    errors = _errors(txt2img_graph(sampler="uni_pc", scheduler="karras"))
    assert errors["3"] == [("value_not_in_list", "sampler_name")]
    with pytest.raises(GraphValidationError, match="euler_ancestral"):
        engine.validate(txt2img_graph(sampler="uni_pc", scheduler="karras"))


def test_model_names_are_checked_when_given() -> None:
    errors = _errors(txt2img_graph(ckpt="missing.safetensors"), model_names={"checkpoints": ["sd1.safetensors"]})
    assert errors["4"] == [("value_not_in_list", "ckpt_name")]


def test_graph_without_outputs_is_refused() -> None:
    graph = txt2img_graph()
    del graph["9"]
    with pytest.raises(GraphValidationError, match="no output node"):
        Engine().validate(graph)


def test_object_info_shape() -> None:
    info = object_info({"checkpoints": ["a.safetensors"], "loras": ["l.safetensors"]})
    required = {"CheckpointLoaderSimple", "CLIPTextEncode", "CLIPSetLastLayer", "EmptyLatentImage", "KSampler",
                "KSamplerAdvanced", "VAEDecode", "VAEEncode", "VAEEncodeForInpaint", "SetLatentNoiseMask",
                "LoadImage", "LoadImageMask", "SaveImage", "PreviewImage", "LoraLoader", "LoraLoaderModelOnly",
                "VAELoader", "LatentUpscale", "LatentUpscaleBy", "ImageScale", "ImageScaleBy", "RepeatLatentBatch",
                "ConditioningCombine", "ControlNetLoader", "ControlNetApplyAdvanced"}
    assert required <= set(info)
    ks = info["KSampler"]
    assert ks["input"]["required"]["seed"][1]["control_after_generate"] is True
    assert ks["input_order"]["required"][:3] == ["model", "seed", "steps"]
    assert ks["output"] == ["LATENT"] and ks["category"] == "sampling" and ks["output_node"] is False
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"] == [["a.safetensors"]]
    assert info["CheckpointLoaderSimple"]["output"] == ["MODEL", "CLIP", "VAE"]
    assert info["SaveImage"]["output_node"] is True
    assert info["ControlNetApplyAdvanced"]["input"]["optional"] == {"vae": ["VAE"]}
