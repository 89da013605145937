"""WebSocket messages for a prompt interrupted mid-sampling and a prompt that fails on the worker."""

from __future__ import annotations

import copy
import json

import httpx
from websockets.sync.client import connect

from tests.fixtures.live import demo_files, fleet  # noqa: F401 - fixtures
from tests.integration.comfy.test_comfy_socket import GRAPH, _tail, _until_done


def _open(fleet, headers, client_id: str):  # noqa: F811
    ws = connect(fleet.url.replace("http", "ws") + f"/comfy/ws?clientId={client_id}", additional_headers=headers)
    assert json.loads(ws.recv(timeout=10))["type"] == "status"
    return ws


def _queue(fleet, headers, graph: dict, client_id: str) -> str:  # noqa: F811
    r = httpx.post(f"{fleet.url}/comfy/api/prompt", headers=headers, json={"prompt": graph, "client_id": client_id})
    assert r.status_code == 200, r.text
    return r.json()["prompt_id"]


def test_interrupt_mid_sampling(fleet):  # noqa: F811
    headers = fleet.login()
    fleet.start_worker("w1")
    graph = copy.deepcopy(GRAPH)
    graph["3"]["inputs"]["steps"] = 300
    with _open(fleet, headers, "int") as ws:
        pid = _queue(fleet, headers, graph, "int")
        messages = []
        while not any(m["type"] == "progress" for m in messages):
            frame = ws.recv(timeout=120)
            if isinstance(frame, str):
                messages.append(json.loads(frame))
        progress = next(m for m in messages if m["type"] == "progress")["data"]
        assert progress["node"] == "3" and progress["prompt_id"] == pid and progress["max"] == 300
        r = httpx.post(f"{fleet.url}/comfy/api/interrupt", headers=headers, json={"prompt_id": pid})
        assert r.status_code == 200, r.text
        messages += _until_done(ws, pid)
        tail = _tail(ws)  # upstream's queue worker ends every prompt with `executing {node: null}`

    types = [m["type"] for m in messages if m["type"] not in ("status", "binary")]
    assert types[:2] == ["execution_start", "execution_cached"]
    assert types.index("executing") < types.index("progress") < types.index("execution_interrupted")
    assert types[-1] == "execution_interrupted" and "execution_success" not in types
    assert "execution_error" not in types
    interrupted = messages[-1]["data"]
    # upstream's PromptExecutor.handle_execution_error, plus the timestamp its add_message stamps on every message
    assert set(interrupted) == {"prompt_id", "node_id", "node_type", "executed", "timestamp"}
    assert {k: interrupted[k] for k in ("prompt_id", "node_id", "node_type")} == \
        {"prompt_id": pid, "node_id": "3", "node_type": "KSampler"}
    # the sampler's inputs had all been produced before it was interrupted
    assert sorted(interrupted["executed"]) == ["4", "5", "6", "7"]
    assert tail == {"type": "executing", "data": {"node": None, "display_node": None, "prompt_id": pid}}

    job = httpx.get(f"{fleet.url}/comfy/api/jobs/{pid}", headers=headers).json()
    assert job["status"] == "cancelled"
    history = httpx.get(f"{fleet.url}/comfy/api/history/{pid}", headers=headers).json()[pid]
    assert history["status"]["status_str"] == "error" and history["status"]["completed"] is False
    assert [m[0] for m in history["status"]["messages"]] == ["execution_start", "execution_interrupted"]
    assert history["status"]["messages"][1][1]["node_id"] == "3"


def test_node_failing_on_the_worker(fleet):  # noqa: F811
    """An SDXL text encoder wired into an SD 1.5 sampler: valid types, but the shapes clash at run time."""
    headers = fleet.login()
    fleet.start_worker("w1")
    graph = copy.deepcopy(GRAPH)
    graph["10"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "demo-sdxl.safetensors"}}
    graph["6"]["inputs"]["clip"] = ["10", 1]
    graph["7"]["inputs"]["clip"] = ["10", 1]
    with _open(fleet, headers, "err") as ws:
        pid = _queue(fleet, headers, graph, "err")
        messages = _until_done(ws, pid)
        tail = _tail(ws)  # upstream's queue worker ends every prompt with `executing {node: null}`

    types = [m["type"] for m in messages if m["type"] not in ("status", "binary")]
    assert types[0] == "execution_start" and types[-1] == "execution_error"
    assert "execution_success" not in types and "executed" not in types
    error = messages[-1]["data"]
    assert set(error) == {"prompt_id", "node_id", "node_type", "executed", "exception_message", "exception_type",
                          "traceback", "current_inputs", "current_outputs", "timestamp"}
    assert error["prompt_id"] == pid and error["node_id"] == "3" and error["node_type"] == "KSampler"
    assert error["exception_type"] and error["exception_type"] != "node_error"
    assert error["exception_message"] and not error["exception_message"].startswith(error["exception_type"])
    assert sorted(error["executed"]) == ["10", "4", "5", "6", "7"]
    assert isinstance(error["traceback"], list) and isinstance(error["current_outputs"], list)
    assert error["current_inputs"]["steps"] == [2] and error["current_inputs"]["sampler_name"] == ["euler"]
    assert tail == {"type": "executing", "data": {"node": None, "display_node": None, "prompt_id": pid}}

    history = httpx.get(f"{fleet.url}/comfy/api/history/{pid}", headers=headers).json()[pid]
    assert history["status"]["status_str"] == "error" and history["status"]["completed"] is False
    assert history["outputs"] == {}
    kind, data = history["status"]["messages"][-1]
    assert kind == "execution_error" and data["node_id"] == "3" and data["node_type"] == "KSampler"
    assert data["exception_message"] == error["exception_message"]
    job = httpx.get(f"{fleet.url}/comfy/api/jobs/{pid}", headers=headers).json()
    assert job["status"] == "failed"
