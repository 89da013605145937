"""Authorization matrix entries of the inference and worker routes."""

from __future__ import annotations

import io

from PIL import Image

from tests.fixtures.runtime import Api
from tests.integration.api.authz_matrix import Actor, Case, Request

INFER = "inference:all"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, format="PNG")
    return buf.getvalue()


def image_graph(api: Api, owner: Actor) -> dict:
    """A graph needing no model: LoadImage → SaveImage, on an input the owner uploaded."""
    r = api.client.post("/api/v1/inputs", headers=owner.headers, files={"image": ("a.png", _png(), "image/png")})
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    return {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}


def own_job(api: Api, owner: Actor) -> str:
    r = api.client.post("/api/v1/inferences", headers=owner.headers, json={"graph": image_graph(api, owner)})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def cancelled_job(api: Api, owner: Actor) -> str:
    job_id = own_job(api, owner)
    assert api.client.post(f"/api/v1/inferences/{job_id}/cancel", headers=owner.headers).status_code == 200
    return job_id


def _worker(api: Api, name: str) -> dict[str, str]:
    issued = api.runtime.services.workers.register(name=name, endpoint="default")
    return {"Authorization": f"Bearer {issued.token}"}


def held_job(api: Api, owner: Actor) -> tuple[str, int, dict, dict]:
    """A job claimed by a fresh worker: (job id, fencing token, worker headers, other worker headers)."""
    own_job(api, owner)
    mine, other = _worker(api, "mine"), _worker(api, "other")
    r = api.client.post("/api/v1/worker/claim", headers=mine, json={"wait_seconds": 0})
    assert r.status_code == 200, r.text
    return r.json()["id"], r.json()["fencing_token"], mine, other


def _worker_case(path: str, body=None, ok=frozenset({204}), content: bytes | None = None) -> Case:
    def build(api: Api, owner: Actor) -> Request:
        job_id, token, mine, other = held_job(api, owner)
        payload = None if body is None else {**body, "fencing_token": token}
        return Request(path.format(job=job_id, token=token), payload, ok=ok, headers=mine, other_headers=other,
                       content=content)
    return Case(INFER, build, worker=True)


def _model_case() -> Case:
    def build(api: Api, owner: Actor) -> Request:
        mine, other = _worker(api, "mine"), _worker(api, "other")
        return Request("/api/v1/worker/models/" + "0" * 64, ok=frozenset({404}), headers=mine, other_headers=other)
    return Case(INFER, build, worker=True)


CASES = {
    ("POST", "/api/v1/inferences"): Case(INFER, lambda api, o: Request(
        "/api/v1/inferences", {"graph": image_graph(api, o)}, ok=frozenset({202}))),
    ("GET", "/api/v1/inferences"): Case(INFER, lambda api, o: Request("/api/v1/inferences")),
    ("GET", "/api/v1/inferences/{job_id}"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{own_job(api, o)}"), owned=True),
    ("POST", "/api/v1/inferences/{job_id}/cancel"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{own_job(api, o)}/cancel"), owned=True),
    ("DELETE", "/api/v1/inferences/{job_id}"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{own_job(api, o)}", ok=frozenset({204})), owned=True),
    ("GET", "/api/v1/inferences/{job_id}/outputs/{index}"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{own_job(api, o)}/outputs/0", ok=frozenset({404})),
        owned=True, notes="no output yet: the owner gets 404 naming the output; others 404 on the job"),
    ("GET", "/api/v1/inferences/{job_id}/preview"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{own_job(api, o)}/preview", ok=frozenset({204})),
        owned=True),
    ("GET", "/api/v1/inferences/{job_id}/events"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{cancelled_job(api, o)}/events"), owned=True,
        notes="cancelled first so the stream ends"),
    ("POST", "/api/v1/inputs"): Case(INFER, lambda api, o: Request(
        "/api/v1/inputs", files={"image": ("a.png", _png(), "image/png")}, ok=frozenset({201}))),
    ("POST", "/api/v1/worker/report"): Case(INFER, lambda api, o: Request(
        "/api/v1/worker/report", {"status": "idle"}, ok=frozenset({204}), headers=_worker(api, "r")), worker=True),
    ("POST", "/api/v1/worker/claim"): Case(INFER, lambda api, o: Request(
        "/api/v1/worker/claim", {"wait_seconds": 0}, ok=frozenset({204}), headers=_worker(api, "c")), worker=True),
    ("POST", "/api/v1/worker/jobs/{job_id}/heartbeat"): _worker_case(
        "/api/v1/worker/jobs/{job}/heartbeat", {"value": 1, "max": 2}, ok=frozenset({200})),
    ("PUT", "/api/v1/worker/jobs/{job_id}/outputs/{index}"): _worker_case(
        "/api/v1/worker/jobs/{job}/outputs/0?fencing_token={token}", content=_png()),
    ("POST", "/api/v1/worker/jobs/{job_id}/complete"): _worker_case(
        "/api/v1/worker/jobs/{job}/complete", {"outputs": []}),
    ("POST", "/api/v1/worker/jobs/{job_id}/fail"): _worker_case(
        "/api/v1/worker/jobs/{job}/fail", {"code": "x", "message": "y"}),
    ("POST", "/api/v1/worker/jobs/{job_id}/cancelled"): _worker_case("/api/v1/worker/jobs/{job}/cancelled", {}),
    ("POST", "/api/v1/worker/jobs/{job_id}/release"): _worker_case("/api/v1/worker/jobs/{job}/release", {}),
    ("GET", "/api/v1/worker/jobs/{job_id}/inputs/{name}"): _worker_case(
        "/api/v1/worker/jobs/{job}/inputs/missing.png?fencing_token={token}", ok=frozenset({404})),
    ("GET", "/api/v1/worker/models/{sha256}"): _model_case(),
}
