"""Published workflows as ComfyUI Apps: inputs from App Mode's `extra.linearData`, kinds from node specs."""

from __future__ import annotations

import copy

import pytest

from tests.fixtures.live import demo_files, register_demo  # noqa: F401 - fixture

ROOT = "6f0c2c9e-0d4c-4a51-9d0a-2b7f3c1e5a10"
GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "demo-sd15.safetensors"},
          "_meta": {"title": "Load Checkpoint"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]},
          "_meta": {"title": "Positive"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]},
          "_meta": {"title": "Negative"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "app"}},
}


def ui_graph(inputs: list) -> dict:
    """A frontend workflow as App Mode saves it (only what the server reads matters here)."""
    return {"id": ROOT, "version": 0.4, "nodes": [], "links": [],
            "extra": {"linearMode": True, "linearData": {"inputs": inputs, "outputs": [9]}}}


@pytest.fixture
def lead(api, demo_files):  # noqa: F811
    register_demo(api.runtime, demo_files)
    return api.make_user(roles=["lead-artist"])["headers"]


def test_exposed_inputs_come_from_linear_data_with_kinds_from_node_specs(api, lead):
    selection = [[f"{ROOT}:6:text", "text"], [f"{ROOT}:7:text", "text"], [3, "seed"], ["3", "sampler_name"],
                 [f"{ROOT}:4:ckpt_name", "ckpt_name", {"height": 80}], [f"{ROOT}:3:cfg", "cfg"]]
    r = api.client.post("/api/v1/workflows", headers=lead,
                        json={"name": "Cat app", "graph": GRAPH, "ui_graph": ui_graph(selection)})
    assert r.status_code == 201, r.text
    inputs = {i["name"]: i for i in r.json()["inputs"]}
    assert list(inputs) == ["text_6", "text_7", "seed", "sampler_name", "ckpt_name", "cfg"]
    assert inputs["text_6"] | {} == {"name": "text_6", "node": "6", "input": "text", "label": "Positive: text",
                                     "type": "string", "default": "a cat", "min": None, "max": None,
                                     "choices": None}
    assert (inputs["seed"]["type"], inputs["seed"]["min"], inputs["seed"]["max"]) == ("int", 0, 0xffffffffffffffff)
    assert (inputs["cfg"]["type"], inputs["cfg"]["min"], inputs["cfg"]["max"]) == ("float", 0.0, 100.0)
    assert inputs["sampler_name"]["type"] == "choice" and {"euler", "dpmpp_2m"} <= set(inputs["sampler_name"]["choices"])
    # A checkpoint picker offers the publisher's checkpoints, and each of them is pinned by sha256.
    assert inputs["ckpt_name"]["choices"] == ["demo-sd15.safetensors", "demo-sdxl.safetensors"]
    pinned = {m["name"]: m["sha256"] for m in r.json()["models"]}
    assert set(pinned) == {"demo-sd15.safetensors", "demo-sdxl.safetensors"}
    assert all(len(sha) == 64 for sha in pinned.values())

    # Artists run it with the exposed inputs only; the kinds inferred above are enforced.
    artist = api.make_user(roles=["artist"])["headers"]
    r = api.client.post("/api/v1/workflows/Cat app/runs", headers=artist,
                        json={"inputs": {"text_6": "a dog", "sampler_name": "dpmpp_2m", "seed": 9}})
    assert r.status_code == 202, r.text
    r = api.client.post("/api/v1/workflows/Cat app/runs", headers=artist, json={"inputs": {"sampler_name": "nope"}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "inputs.sampler_name"
    r = api.client.post("/api/v1/workflows/Cat app/runs", headers=artist, json={"inputs": {"cfg": 101}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "inputs.cfg"


def test_comfy_type_names_and_left_out_bounds(api, lead):
    body = {"name": "Typed", "graph": GRAPH, "inputs": [
        {"name": "steps", "node": "3", "input": "steps", "type": "INT"},
        {"name": "sampler", "node": "3", "input": "sampler_name", "type": "COMBO"},
        {"name": "prompt", "node": "6", "input": "text", "type": "STRING"},
        {"name": "width", "node": "5", "input": "width"},
        {"name": "denoise", "node": "3", "input": "denoise", "type": "FLOAT", "max": 0.9, "default": 0.5}]}
    r = api.client.post("/api/v1/workflows", headers=lead, json=body)
    assert r.status_code == 201, r.text
    inputs = {i["name"]: i for i in r.json()["inputs"]}
    assert (inputs["steps"]["type"], inputs["steps"]["min"], inputs["steps"]["max"]) == ("int", 1, 10000)
    assert inputs["sampler"]["type"] == "choice" and "euler" in inputs["sampler"]["choices"]
    assert inputs["prompt"]["type"] == "string" and inputs["width"]["type"] == "int"
    assert (inputs["denoise"]["min"], inputs["denoise"]["max"], inputs["denoise"]["default"]) == (0.0, 0.9, 0.5)
    # Declared inputs win over a selection in the ui_graph; no declaration and no selection: nothing exposed.
    r = api.client.post("/api/v1/workflows", headers=lead, json={
        **body, "ui_graph": ui_graph([[3, "seed"]])})
    assert [i["name"] for i in r.json()["inputs"]] == ["steps", "sampler", "prompt", "width", "denoise"]
    r = api.client.post("/api/v1/workflows", headers=lead, json={"name": "Plain", "graph": GRAPH})
    assert r.status_code == 201 and r.json()["inputs"] == []


@pytest.mark.parametrize(("field", "inputs", "selection", "expected"), [
    ("inputs[0].type", [{"name": "a", "node": "3", "input": "seed", "type": "LATENT"}], None, "ComfyUI's INT"),
    ("inputs[0].type", [{"name": "a", "node": "3", "input": "seed", "type": "Int"}], None, "must be one of"),
    ("inputs[0].default", [{"name": "a", "node": "3", "input": "seed", "type": "INT", "default": -1}], None,
     "at least 0"),
    ("ui_graph.extra.linearData.inputs[0]", None, [[12, "seed"]], "node 12 is not in the graph"),
    ("ui_graph.extra.linearData.inputs[0]", None, [[3, "control_after_generate"]], "not an input of node 3"),
    ("ui_graph.extra.linearData.inputs[1]", None, [[3, "seed"], ["other-graph:2:seed", "seed"]], "subgraph"),
    ("ui_graph.extra.linearData.inputs[0]", None, [["3"]], "[widget id, widget name]"),
    ("ui_graph.extra.linearData.inputs", None, "seed", "must be a list"),
])
def test_bad_declarations_and_selections_name_the_field(api, lead, field, inputs, selection, expected):
    body = {"name": "Bad", "graph": copy.deepcopy(GRAPH)}
    if inputs is not None:
        body["inputs"] = inputs
    if selection is not None:
        body["ui_graph"] = ui_graph(selection)
    r = api.client.post("/api/v1/workflows", headers=lead, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == field and expected in r.json()["error"]["message"], r.json()
    assert api.client.get("/api/v1/workflows/Bad", headers=lead).status_code == 404  # nothing half-written
