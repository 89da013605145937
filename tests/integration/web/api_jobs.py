"""Jobs for web API tests: submitted as a user, finished through the worker protocol with PIL-made PNGs."""

from __future__ import annotations

import io

from PIL import Image

from tests.fixtures.runtime import Api

MODEL = "demo-sd15.safetensors"


def png(width: int = 96, height: int = 64, color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def graph_job(api: Api, headers: dict) -> str:
    """A job needing no model (LoadImage → SaveImage on an uploaded input), so no demo model is registered."""
    r = api.client.post("/api/v1/inputs", headers=headers, files={"image": ("a.png", png(), "image/png")})
    assert r.status_code == 201, r.text
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": r.json()["name"]}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    r = api.client.post("/api/v1/inferences", headers=headers, json={"graph": graph})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def finish_next(api: Api, images: list[bytes], *, worker: str = "w") -> str:
    """Claim the next queued job as a fresh worker and complete it with `images`; returns its id."""
    token = api.runtime.services.workers.register(name=worker, endpoint="default").token
    headers = {"Authorization": f"Bearer {token}"}
    # as `sdfleet worker` does: it reports itself idle, then claims
    assert api.client.post("/api/v1/worker/report", headers=headers, json={"status": "idle"}).status_code == 204
    held = api.client.post("/api/v1/worker/claim", headers=headers, json={"wait_seconds": 0}).json()
    for i, data in enumerate(images):
        r = api.client.put(f"/api/v1/worker/jobs/{held['id']}/outputs/{i}?fencing_token={held['fencing_token']}",
                           headers=headers, content=data)
        assert r.status_code == 204, r.text
    r = api.client.post(f"/api/v1/worker/jobs/{held['id']}/complete", headers=headers, json={
        "fencing_token": held["fencing_token"], "outputs": [{"index": i, "node_id": "2"} for i in range(len(images))]})
    assert r.status_code == 204, r.text
    return held["id"]
