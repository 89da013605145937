"""A LoRA trained on the fleet by a real worker process: progress in SSE, checkpoints, samples and grid stored
with the job, the LoRA registered with its lineage — and usable at once by A1111 payloads and ComfyUI graphs."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from sdfleet.cli import app
from tests.integration.a1111.a1111_client import TXT2IMG
from tests.integration.trainings.training_fleet import (
    BASE,
    allow_training,
    events,
    make_dataset,
    wait_training,
)
from tests.unit.engine.conftest import txt2img_graph


def _logs(fleet):
    return lambda: "\n".join(p.read_text()[-4000:] for p in fleet.tmp.glob("worker-*.log"))


def _graph_image(fleet, headers, strength: float) -> np.ndarray:
    graph = txt2img_graph(ckpt="demo-sd15.safetensors", seed=5, steps=3)
    graph["20"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1],
                                                          "lora_name": "sks.safetensors",
                                                          "strength_model": strength, "strength_clip": strength}}
    for node_id in ("6", "7"):
        graph[node_id]["inputs"]["clip"] = ["20", 1]
    graph["3"]["inputs"]["model"] = ["20", 0]
    r = httpx.post(f"{fleet.url}/api/v1/inferences", headers=headers, json={"graph": graph})
    assert r.status_code == 202, r.text
    job = fleet.wait(headers, r.json()["id"])
    assert job["status"] == "succeeded", job
    png = httpx.get(f"{fleet.url}{job['outputs'][0]['url']}", headers=headers).content
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _a1111_image(fleet, headers, prompt: str) -> np.ndarray:
    r = httpx.post(f"{fleet.url}/sdapi/v1/txt2img", headers=headers, json={**TXT2IMG, "prompt": prompt}, timeout=120)
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]))).convert("RGB")).astype(int)


def test_train_a_lora_and_use_it_in_a1111_and_comfyui(fleet):
    admin = fleet.login()
    allow_training(fleet.url, admin)
    dataset = make_dataset(fleet.url, admin)
    # `sdfleet train start` queues it and follows it with a progress bar until the LoRA is registered.
    token = admin["Authorization"].removeprefix("Bearer ")
    args = ["train", "start", "--server", fleet.url, "--token", token, "--dataset", dataset["name"],
            "--base-model", "demo-sd15.safetensors", "--name", "sks", "--steps", "6", "--rank", "4", "--alpha", "4",
            "--unet-lr", "0.05", "--save-every", "2", "--sample-every", "3", "--sample-prompt", "sks thing",
            "--seed", "7", "--set", "samples={\"prompts\": [\"sks thing\"], \"steps\": 2, \"seed\": 1}"]
    fleet.start_worker("t")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, _logs(fleet)())
    job_id = result.stdout.split()[0]
    assert "LoRA sks.safetensors registered" in result.output and "<lora:sks:1>" in result.output
    job = wait_training(fleet.url, admin, job_id, logs=_logs(fleet))
    assert job["status"] == "succeeded", (job, _logs(fleet)())
    # 1. The job: steps, the loss curve, the LoRA it registered.
    assert job["progress"] == {**job["progress"], "step": 6, "max_steps": 6}
    assert job["info"]["steps"] == 6 and job["info"]["resumed_from_step"] == 0 and len(job["info"]["losses"]) == 6
    assert job["lora"]["name"] == "sks.safetensors" and job["dataset_hash"] == dataset["content_hash"]
    # 2. SSE: progress events carry loss, lr, speed and ETA.
    seen = events(fleet.url, admin, job_id)
    progress = [d for t, d in seen if t == "progress"]
    assert progress and all({"loss", "lr", "steps_per_second", "eta_seconds"} <= set(d["metrics"]) for d in progress
                            if "loss" in d.get("metrics", {})) and any("loss" in d.get("metrics", {}) for d in progress)
    assert [t for t, _ in seen][-1] == "succeeded"
    # 3. Stored with the job: samples at step 3 and 6, the grid, the LoRA file (no checkpoint left but the last).
    names = {a["name"] for a in httpx.get(f"{fleet.url}{BASE}/{job_id}/artifacts", headers=admin).json()}
    assert {"lora.safetensors", "grid.png", "samples/00000003-0.png", "samples/00000006-0.png",
            "checkpoints/00000004.pt"} <= names, names
    grid = Image.open(io.BytesIO(httpx.get(f"{fleet.url}{BASE}/{job_id}/artifacts/grid.png", headers=admin).content))
    assert grid.size == (3 * 64, 64 + 14)
    # 4. The registry: a Lora with kohya metadata and the lineage (base sha256, dataset id and hash, job id).
    lora = httpx.get(f"{fleet.url}/api/v1/checkpoints/{job['lora']['id']}", headers=admin).json()
    assert lora["type"] == "Lora" and lora["source"] == "training" and lora["architecture"] == "sd1", lora
    file_bytes = httpx.get(f"{fleet.url}{BASE}/{job_id}/artifacts/lora.safetensors", headers=admin).content
    path = fleet.tmp / "sks.safetensors"
    path.write_bytes(file_bytes)
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    lineage = json.loads(header["sdfleet.lineage"])
    assert lineage["job_id"] == job_id and lineage["dataset_id"] == dataset["id"]
    assert lineage["base_sha256"] == job["base_sha256"] and lineage["dataset_hash"] == dataset["content_hash"]
    assert header["ss_network_dim"] == "4" and header["ss_steps"] == "6"
    # 5. Used at once: A1111 `<lora:sks:1>` and a ComfyUI LoraLoader both change the image.
    plain, with_lora = _a1111_image(fleet, admin, "a red cube"), _a1111_image(fleet, admin, "a red cube <lora:sks:1>")
    assert np.abs(plain - with_lora).max() > 2
    assert np.abs(_graph_image(fleet, admin, 0.0) - _graph_image(fleet, admin, 1.0)).max() > 2
