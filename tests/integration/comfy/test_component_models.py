"""A checkpoint's UNet and text encoders uploaded as separate files (types diffusion_models and text_encoders),
listed in /object_info, pinned to a ComfyUI prompt and run on a real worker with UNETLoader + CLIPLoader: the
image equals the whole checkpoint's."""

from __future__ import annotations

import hashlib
import io
import json
import time

import httpx
import numpy as np
from PIL import Image

from sdfleet.engine import ldm_keys
from sdfleet.engine.checkpoints import CONFIGS_METADATA_KEY, FAMILY_METADATA_KEY, pipeline_configs
from sdfleet.engine.tensor_file import save_safetensors
from sdfleet.engine.tiny import tiny_sd1_pipeline
from tests.fixtures.live import demo_files, fleet  # noqa: F401 - fixtures
from tests.integration.comfy.test_comfy_socket import GRAPH


def _upload(client: httpx.Client, headers: dict, data: bytes, *, name: str, model_type: str) -> dict:
    r = client.post("/api/v1/checkpoints/uploads", headers=headers,
                    json={"filename": name, "type": model_type, "size": len(data)})
    assert r.status_code == 201, r.text
    upload = r.json()
    size = upload["part_size"]
    for n in range(1, upload["part_count"] + 1):
        r = client.put(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/parts/{n}", headers=headers,
                       content=data[(n - 1) * size:n * size])
        assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/complete", headers=headers, json={})
    assert r.status_code == 200, r.text
    return r.json()


def _parts(tmp_path) -> tuple[bytes, bytes]:
    """The demo SD 1.5 model's UNet (bare LDM keys) and CLIP-L (Hugging Face keys) as separate files."""
    pipeline = tiny_sd1_pipeline(seed=0)  # the demo checkpoint's weights (DEMO_SEED)
    metadata = {"format": "pt", FAMILY_METADATA_KEY: "sd1",
                CONFIGS_METADATA_KEY: json.dumps(pipeline_configs(pipeline, family="sd1"))}
    unet = pipeline.unet
    up = {i for i, block in enumerate(unet.up_blocks) if getattr(block, "attentions", None)}
    ldm = ldm_keys.unet_to_ldm(unet.state_dict(), layers_per_block=unet.config.layers_per_block,
                               up_attention_blocks=up)
    unet_file = save_safetensors({k.removeprefix(ldm_keys.UNET_PREFIX): v for k, v in ldm.items()},
                                 tmp_path / "unet.safetensors", metadata=metadata)
    clip_file = save_safetensors({f"text_model.{k}": v for k, v in pipeline.text_encoder.state_dict().items()},
                                 tmp_path / "clip.safetensors", metadata=metadata)
    return unet_file.read_bytes(), clip_file.read_bytes()


def _image(client: httpx.Client, headers: dict, graph: dict) -> np.ndarray:
    r = client.post("/comfy/api/prompt", headers=headers, json={"prompt": graph})
    assert r.status_code == 200, r.text
    pid = r.json()["prompt_id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        history = client.get(f"/comfy/api/history/{pid}", headers=headers).json()
        if pid in history and history[pid]["status"].get("completed"):
            image = history[pid]["outputs"]["9"]["images"][0]
            png = client.get("/comfy/api/view", headers=headers, params=image).content
            return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
        assert pid not in history or history[pid]["status"].get("status_str") != "error", history[pid]
        time.sleep(0.5)
    raise AssertionError(f"prompt {pid} did not finish")


def test_unet_and_text_encoder_files_run_like_their_checkpoint(fleet, tmp_path):  # noqa: F811
    headers = fleet.login()
    client = fleet.client()
    unet_bytes, clip_bytes = _parts(tmp_path)
    unet = _upload(client, headers, unet_bytes, name="demo-unet.safetensors", model_type="diffusion_models")
    clip = _upload(client, headers, clip_bytes, name="demo-clip-l.safetensors", model_type="text_encoders")
    assert (unet["type"], unet["architecture"]) == ("diffusion_models", "sd1")
    # the tiny encoder is 32 wide: no real family has that width
    assert (clip["type"], clip["architecture"], clip["sha256"]) == (
        "text_encoders", "unknown", hashlib.sha256(clip_bytes).hexdigest())

    info = client.get("/comfy/api/object_info", headers=headers).json()
    assert info["UNETLoader"]["input"]["required"]["unet_name"][0] == ["demo-unet.safetensors"]
    assert "demo-clip-l.safetensors" in info["CLIPLoader"]["input"]["required"]["clip_name"][0]

    fleet.start_worker("w")
    plain = _image(client, headers, GRAPH)
    graph = json.loads(json.dumps(GRAPH))
    graph["20"] = {"class_type": "UNETLoader", "inputs": {"unet_name": "demo-unet.safetensors",
                                                          "weight_dtype": "default"}}
    graph["21"] = {"class_type": "CLIPLoader", "inputs": {"clip_name": "demo-clip-l.safetensors",
                                                          "type": "stable_diffusion"}}
    graph["3"]["inputs"]["model"] = ["20", 0]
    graph["6"]["inputs"]["clip"] = graph["7"]["inputs"]["clip"] = ["21", 0]
    np.testing.assert_array_equal(_image(client, headers, graph), plain)
