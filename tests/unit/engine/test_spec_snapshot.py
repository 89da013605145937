"""The torch-free spec registry the API server uses must equal the engine's live registry."""

import json
import subprocess
import sys

from sdfleet.engine import spec_snapshot


def test_snapshot_matches_live_registry():
    stored = json.loads(spec_snapshot.SNAPSHOT.read_text())
    live = json.loads(json.dumps(spec_snapshot.live_snapshot(), sort_keys=True))
    assert stored == live, "node_specs.json is stale: run `python -m sdfleet.engine.spec_snapshot`"


def test_spec_registry_object_info_equals_engine():
    from sdfleet.engine.executor import object_info

    names = {"checkpoints": ["a.safetensors"], "loras": ["l.safetensors"], "input": ["x.png"]}
    assert spec_snapshot.spec_registry().object_info(names) == object_info(names)


def test_spec_registry_checks_sampler_pairs():
    from sdfleet.engine.graph import GraphValidationError, validate_graph

    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 3, "cfg": 4.0, "sampler_name": "euler", "scheduler": "nope", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}},
    }
    try:
        validate_graph(graph, spec_snapshot.spec_registry(), model_names={"checkpoints": ["a.safetensors"]})
    except GraphValidationError as exc:
        assert exc.node_errors["3"][0].input_name == "scheduler"
    else:
        raise AssertionError("an unsupported scheduler passed validation")


def test_server_side_modules_do_not_import_torch():
    code = ("import sys; from sdfleet.engine import spec_snapshot, a1111, graph, infotext, image_admission; "
            "spec_snapshot.spec_registry(); print('torch' in sys.modules, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
