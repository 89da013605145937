"""The per-request work limit counts the shapes a graph really samples at (issue 11, item 3), on the native
API, both ComfyUI listeners and the A1111 routes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sdfleet.api.comfy.mount import create_comfy_app
from tests.integration.a1111.a1111_client import TXT2IMG, basic, new_key, png_b64, with_demo
from tests.unit.engine.test_work_estimate import issue_chain

LIMIT = 2048 * 2048 * 150 * 8


def _chain(**changes) -> dict:
    graph = issue_chain()
    graph["4"]["inputs"]["ckpt_name"] = "demo-sd15.safetensors"
    for node_id, inputs in changes.items():
        graph[node_id]["inputs"].update(inputs)
    return graph


@pytest.fixture
def artist(api, demo_files):
    with_demo(api, demo_files)
    return api.make_user(roles=["artist"])


def test_the_upscale_and_batch_chain_is_refused_naming_the_sampler(api, artist):
    r = api.client.post("/api/v1/inferences", headers=artist["headers"], json={"graph": _chain()})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"]["node_id"] == "3" and error["details"]["class_type"] == "KSampler"
    assert "node 3 (KSampler): 4096x4096 × batch 64 × 150 steps" in error["message"]
    assert error["details"]["limit"] == LIMIT and error["details"]["work"] > 30 * LIMIT
    # The same chain at a size that fits is accepted.
    small = _chain(**{"10": {"scale_by": 2.0}, "11": {"scale_by": 2.0}, "12": {"amount": 2}})
    assert api.client.post("/api/v1/inferences", headers=artist["headers"], json={"graph": small}).status_code == 202


def test_both_comfy_listeners_mark_the_node(api, artist):
    comfy = TestClient(create_comfy_app(api.runtime.services, login_url="/login"))
    for client, path in ((api.client, "/comfy/api/prompt"), (comfy, "/prompt")):
        r = client.post(path, headers=artist["headers"], json={"prompt": _chain()})
        assert r.status_code == 400, r.text
        node = r.json()["node_errors"]["3"]
        assert node["class_type"] == "KSampler" and "4096x4096 × batch 64" in node["errors"][0]["message"]


def test_a1111_img2img_counts_every_iteration_at_its_size(api, artist):
    # A1111 resizes the init image to width × height; n_iter 2 makes two samplers, each just at the limit.
    payload = {**TXT2IMG, "init_images": [png_b64(size=(64, 64))], "steps": 150, "batch_size": 8, "n_iter": 2,
               "width": 2048, "height": 2048, "denoising_strength": 1.0}
    r = api.client.post("/api/v1/inferences", headers=artist["headers"], json={"task": "img2img", "params": payload})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["work"] > 2 * LIMIT
    headers = basic(artist["username"], new_key(api.client, artist["headers"]))
    r = api.client.post("/sdapi/v1/img2img", headers=headers, json=payload)
    assert r.status_code == 422, r.text
    assert "2048x2048 × batch 8 × 150 steps" in r.json()["error"]["message"]
