"""End to end: a real server on a port, real worker subprocesses, the demo models (CPU)."""

import base64
import io
import json

import httpx
import pytest
from PIL import Image

from tests.fixtures.live import wait_for_progress

TXT2IMG = {"prompt": "a red cube", "negative_prompt": "blurry", "steps": 4, "width": 64, "height": 64,
           "seed": 42, "cfg_scale": 5, "sampler_name": "Euler"}


def submit(fleet, headers, body, **kw):
    r = httpx.post(f"{fleet.url}/api/v1/inferences", json=body, headers=headers, **kw)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def png_b64(color, size=(64, 64), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def fetch_output(fleet, headers, job, index=0):
    r = httpx.get(fleet.url + job["outputs"][index]["url"], headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(r.content))


def test_txt2img_img2img_inpaint_lora_and_graph(fleet):
    admin = fleet.login()
    fleet.start_worker("a")
    # txt2img
    job = fleet.wait(admin, submit(fleet, admin, {"task": "txt2img", "params": TXT2IMG}))
    assert job["status"] == "succeeded", job
    assert job["model"] == "demo-sd15.safetensors" and job["seed"] == 42
    image = fetch_output(fleet, admin, job)
    assert image.size == (64, 64)
    assert "Steps: 4" in image.info["parameters"] and "Seed: 42" in image.info["parameters"]
    assert "KSampler" in image.info["prompt"]
    # img2img
    params = {**TXT2IMG, "init_images": [png_b64("blue")], "denoising_strength": 0.5}
    job = fleet.wait(admin, submit(fleet, admin, {"task": "img2img", "params": params}))
    assert job["status"] == "succeeded", job
    # inpaint (white = repaint)
    mask = png_b64("white", mode="L")
    job = fleet.wait(admin, submit(fleet, admin, {"task": "img2img", "params": {**params, "mask": mask}}))
    assert job["status"] == "succeeded", job
    # LoRA in the prompt
    lora = {**TXT2IMG, "prompt": "a red cube <lora:demo-lora:0.8>"}
    job = fleet.wait(admin, submit(fleet, admin, {"task": "txt2img", "params": lora}))
    assert job["status"] == "succeeded", job
    assert "demo-lora" in fetch_output(fleet, admin, job).info["parameters"]
    # a ComfyUI API graph
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "demo-sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 3, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}},
    }
    job = fleet.wait(admin, submit(fleet, admin, {"graph": graph}))
    assert job["status"] == "succeeded" and len(job["outputs"]) == 2, job


def read_events(fleet, headers, job_id) -> list[dict]:
    """The job's SSE events until it ends: id, event and data of each."""
    events = []
    with httpx.stream("GET", f"{fleet.url}/api/v1/inferences/{job_id}/events", headers=headers, timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        current = {}
        for line in r.iter_lines():
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and current:
                events.append(current)
                current = {}
    return events


def test_events_stream_and_resume(fleet):
    admin = fleet.login()
    fleet.start_worker("a")
    job_id = submit(fleet, admin, {"task": "txt2img", "params": TXT2IMG})
    events = read_events(fleet, admin, job_id)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "queued" and "started" in kinds and "progress" in kinds and kinds[-1] == "succeeded"
    assert "output" in kinds
    # A cold worker reports the `loading_model` phase (naming the checkpoint) before the first step.
    progress = [e["data"] for e in events if e["event"] == "progress"]
    assert progress[0] == {**progress[0], "value": 0, "max": 0, "node_id": None, "phase": "loading_model",
                           "model": "demo-sd15.safetensors"}, progress
    assert all("phase" not in p for p in progress[1:]), progress
    # The contract, whatever the load: the first and the last sampling step of the sampler node are events,
    # in order, before the outputs (steps in between may be throttled away).
    steps = [(p["value"], p["max"]) for p in progress[1:]]
    sampler_nodes = {p["node_id"] for p in progress[1:]}
    assert len(sampler_nodes) == 1 and steps[0] == (1, 4) and steps[-1] == (4, 4), steps
    assert [v for v, _ in steps] == sorted(v for v, _ in steps)
    assert max(i for i, k in enumerate(kinds) if k == "progress") < kinds.index("output")
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    # Resume after the third event: only later events come back.
    with httpx.stream("GET", f"{fleet.url}/api/v1/inferences/{job_id}/events",
                      headers={**admin, "Last-Event-ID": str(ids[2])}, timeout=30) as r:
        later = [int(line[4:]) for line in r.iter_lines() if line.startswith("id: ")]
    assert later == ids[3:]
    # The same worker again: the checkpoint is in the engine's memory, no loading phase.
    warm = read_events(fleet, admin, submit(fleet, admin, {"task": "txt2img", "params": TXT2IMG}))
    assert warm[-1]["event"] == "succeeded"
    assert [e["data"] for e in warm if e["event"] == "progress" and "phase" in e["data"]] == []


def test_cancel_queued_and_running(fleet):
    admin = fleet.login()
    queued = submit(fleet, admin, {"task": "txt2img", "params": TXT2IMG})
    r = httpx.post(f"{fleet.url}/api/v1/inferences/{queued}/cancel", headers=admin)
    assert r.json()["status"] == "cancelled"
    fleet.start_worker("a")
    long = submit(fleet, admin, {"task": "txt2img", "params": {**TXT2IMG, "steps": 400}})
    wait_for_progress(fleet, admin, long, steps=2)
    r = httpx.post(f"{fleet.url}/api/v1/inferences/{long}/cancel", headers=admin)
    assert r.status_code == 200 and r.json()["cancel_requested"]
    job = fleet.wait(admin, long, timeout=240)
    assert job["status"] == "cancelled" and job["progress"]["value"] < 400


@pytest.mark.timeout(900)
def test_kill_9_worker_mid_job_completes_once_elsewhere(fleet):
    admin = fleet.login()
    first = fleet.start_worker("first")
    job_id = submit(fleet, admin, {"task": "txt2img", "params": {**TXT2IMG, "steps": 300}})
    wait_for_progress(fleet, admin, job_id, steps=2)
    first.kill()
    first.wait()
    fleet.start_worker("second")
    # The second attempt starts a worker and runs all 300 steps again: minutes on a loaded 2-core box.
    job = fleet.wait(admin, job_id, timeout=540)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2 and len(job["outputs"]) == 1
    kinds = [e.type.value for e in fleet.server.runtime.services.inference._queue.events_after(job_id, 0)]
    assert kinds.count("succeeded") == 1 and "requeued" in kinds
    keys = [o.key for o in fleet.server.runtime.objects.list(f"outputs/{job_id}/")]
    assert len(keys) == 1 and "/t2/" in keys[0]


def test_fifty_concurrent_submissions_with_one_key_make_one_job(fleet):
    import concurrent.futures

    admin = fleet.login()
    headers = {**admin, "Idempotency-Key": "same-key-1"}
    body = {"task": "txt2img", "params": TXT2IMG}
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{fleet.url}/api/v1/inferences", json=body,
                                                     headers=headers, timeout=60), range(50)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    other = httpx.post(f"{fleet.url}/api/v1/inferences", headers=headers,
                       json={"task": "txt2img", "params": {**TXT2IMG, "seed": 7}})
    assert other.status_code == 409 and other.json()["error"]["details"]["field"] == "Idempotency-Key"


def test_other_users_job_is_404_everywhere(fleet):
    admin = fleet.login()
    job_id = submit(fleet, admin, {"task": "txt2img", "params": TXT2IMG})
    rt = fleet.server.runtime
    rt.services.users.create(None, username="eve", password="eve-password", roles=["artist"])
    eve = fleet.login("eve", "eve-password")
    for method, path in [("GET", ""), ("POST", "/cancel"), ("DELETE", ""), ("GET", "/events"),
                         ("GET", "/outputs/0"), ("GET", "/preview")]:
        r = httpx.request(method, f"{fleet.url}/api/v1/inferences/{job_id}{path}", headers=eve)
        assert r.status_code == 404, (method, path, r.status_code)
    assert job_id not in str(httpx.get(f"{fleet.url}/api/v1/inferences", headers=eve).json())


def test_bad_submissions_are_4xx_naming_the_field(fleet):
    admin = fleet.login()
    cases = [
        ({"task": "txt2img", "params": {**TXT2IMG, "width": 500}}, "params.width"),
        ({"task": "txt2img", "params": {**TXT2IMG, "script_name": "x/y plot"}}, "params.script_name"),
        ({"task": "txt2img", "params": {**TXT2IMG, "override_settings": {"sd_model_checkpoint": "nope"}}}, None),
        ({"task": "img2img", "params": TXT2IMG}, "params.init_images"),
        ({"task": "img2img", "params": {**TXT2IMG, "init_images": ["bm90IGFuIGltYWdl"]}}, "params.init_images[0]"),
        ({"graph": {"1": {"class_type": "Nope", "inputs": {}}}}, "graph"),
        ({"task": "txt2img", "params": {**TXT2IMG, "width": 8192, "height": 8192, "steps": 1000,
                                        "batch_size": 8}}, None),
        ({}, "task"),
    ]
    for body, field in cases:
        r = httpx.post(f"{fleet.url}/api/v1/inferences", json=body, headers=admin)
        assert 400 <= r.status_code < 500, (body, r.text)
        if field:
            assert r.json()["error"]["details"].get("field") == field, (field, r.json())
    assert httpx.get(f"{fleet.url}/api/v1/inferences", headers=admin).json()["items"] == []
