"""WebSocket message order and shapes for a real run on a real worker: a run and a cached re-run."""

from __future__ import annotations

import json

import httpx
from websockets.sync.client import connect

from tests.fixtures.live import demo_files, fleet  # noqa: F401 - fixtures

GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "demo-sd15.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}},
}


def _until_done(ws, prompt_id: str) -> list[dict]:
    messages = []
    while True:
        frame = ws.recv(timeout=120)
        if isinstance(frame, bytes):
            messages.append({"type": "binary", "data": {"prompt_id": prompt_id}})
            continue
        message = json.loads(frame)
        messages.append(message)
        data = message.get("data", {})
        if message["type"] in ("execution_success", "execution_error", "execution_interrupted") and \
                data.get("prompt_id") == prompt_id:
            return messages


def _tail(ws) -> dict:
    """The next message other than `status` (after a prompt's last execution message: `executing {node: null}`)."""
    while True:
        frame = ws.recv(timeout=30)
        if isinstance(frame, str) and (message := json.loads(frame))["type"] != "status":
            return message


def test_run_and_cached_rerun_messages(fleet):  # noqa: F811
    headers = fleet.login()
    fleet.start_worker("w1")
    ws_url = fleet.url.replace("http", "ws") + "/comfy/ws?clientId=me"
    with connect(ws_url, additional_headers=headers) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "me"}}
        ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        r = httpx.post(f"{fleet.url}/comfy/api/prompt", headers=headers, json={"prompt": GRAPH, "client_id": "me"})
        assert r.status_code == 200, r.text
        pid = r.json()["prompt_id"]
        messages = _until_done(ws, pid)
        types = [m["type"] for m in messages if m["type"] != "status"]
        assert types[:2] == ["execution_start", "execution_cached"]
        assert "progress" in types and "progress_state" in types
        assert types[-2:] == ["executed", "execution_success"]
        executed = next(m for m in messages if m["type"] == "executed")["data"]
        assert executed["node"] == "9" and executed["prompt_id"] == pid
        image = executed["output"]["images"][0]
        assert set(image) == {"filename", "subfolder", "type"}
        view = httpx.get(f"{fleet.url}/comfy/api/view", headers=headers, params=image)
        assert view.status_code == 200 and view.content[:4] == b"\x89PNG"
        assert _tail(ws) == {"type": "executing", "data": {"node": None, "display_node": None, "prompt_id": pid}}
        history = httpx.get(f"{fleet.url}/comfy/api/history/{pid}", headers=headers).json()
        assert history[pid]["status"]["completed"] is True and "9" in history[pid]["outputs"]

        # The same prompt again: the worker's node cache answers, and the client is told which nodes.
        pid2 = httpx.post(f"{fleet.url}/comfy/api/prompt", headers=headers,
                          json={"prompt": GRAPH, "client_id": "me"}).json()["prompt_id"]
        again = _until_done(ws, pid2)
        cached = [m for m in again if m["type"] == "execution_cached" and m["data"]["nodes"]]
        assert cached and {"4", "6", "7"} <= set(cached[0]["data"]["nodes"])
        assert again[-1]["type"] == "execution_success"
        assert _tail(ws)["data"] == {"node": None, "display_node": None, "prompt_id": pid2}

