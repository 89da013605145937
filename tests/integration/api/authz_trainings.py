"""Authorization matrix entries of LoRA trainings (/api/v1/trainings) and their worker routes."""

from __future__ import annotations

import functools
import tempfile
import uuid
from pathlib import Path

from sdfleet.domain.checkpoints import ModelType
from sdfleet.domain.errors import Conflict
from tests.fixtures.runtime import Api
from tests.integration.api.authz_matrix import Actor, Case, Request
from tests.integration.datasets.images import png

TRAIN = "train:all"
TRAINERS = "authz-trainers"
BASE = "/api/v1/trainings"


@functools.cache
def _demo_files() -> dict[str, Path]:
    from sdfleet.engine.demo import create_demo_files

    return {f.name: f.path for f in create_demo_files(Path(tempfile.mkdtemp(prefix="authz-trainings-")))}


def _prepare(api: Api) -> None:
    """Once per runtime: a base checkpoint everyone may use, and `default` open to trainings."""
    checkpoints = api.runtime.services.checkpoints
    try:
        checkpoints.check_name_free(ModelType.CHECKPOINT, "demo-sd15.safetensors")
    except Conflict:
        return
    checkpoints.register_file(_demo_files()["demo-sd15"], name="demo-sd15.safetensors", model_type="Stable-diffusion")
    r = api.client.patch("/api/v1/endpoints/default", headers=api.admin(), json={"kinds": ["inference", "train"]})
    assert r.status_code == 200, r.text
    # Worker cases claim from an endpoint of their own: other routes' jobs wait on `default`.
    r = api.client.post("/api/v1/endpoints", headers=api.admin(),
                        json={"name": TRAINERS, "kinds": ["train"], "max_replicas": 0})
    assert r.status_code == 201, r.text


def body(api: Api, owner: Actor) -> dict:
    """A valid training request of `owner` (a new dataset with one image)."""
    _prepare(api)
    r = api.client.post("/api/v1/datasets", headers=owner.headers,
                        json={"name": f"d{uuid.uuid4().hex[:8]}", "resolution": 64})
    dataset_id = r.json()["id"] if r.status_code == 201 else "0" * 26
    api.client.post(f"/api/v1/datasets/{dataset_id}/images", headers=owner.headers, files={"file": ("a.png", png())})
    return {"name": f"l{uuid.uuid4().hex[:8]}", "base_model": "demo-sd15.safetensors", "dataset_id": dataset_id,
            "max_train_steps": 2}


def own_training(api: Api, owner: Actor, *, cancelled: bool = False, endpoint: str | None = None) -> str:
    r = api.client.post(BASE, headers=owner.headers, json={**body(api, owner), "endpoint": endpoint})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    if cancelled:
        assert api.client.post(f"{BASE}/{job_id}/cancel", headers=owner.headers).status_code == 200
    return job_id


def _artifact(api: Api, owner: Actor) -> str:
    job_id = own_training(api, owner)
    api.runtime.objects.put(f"trainings/{job_id}/grid.png", png(), content_type="image/png")
    return f"{BASE}/{job_id}/artifacts/grid.png"


def _worker(api: Api, name: str) -> dict[str, str]:
    issued = api.runtime.services.workers.register(name=name, endpoint=TRAINERS)
    return {"Authorization": f"Bearer {issued.token}"}


def _worker_case(path: str, payload=None, ok=frozenset({204}), content: bytes | None = None,
                 lora: bool = False) -> Case:
    def build(api: Api, owner: Actor) -> Request:
        job_id = own_training(api, owner, endpoint=TRAINERS)
        mine, other = _worker(api, "mine"), _worker(api, "other")
        r = api.client.post("/api/v1/worker/claim", headers=mine, json={"wait_seconds": 0})
        assert r.status_code == 200 and r.json()["id"] == job_id and r.json()["kind"] == "train", r.text
        token = r.json()["fencing_token"]
        sha = r.json()["training"]["dataset"]["images"][0]["sha256"]
        if lora:
            api.runtime.objects.put(f"trainings/{job_id}/lora.safetensors", _demo_files()["demo-lora"].read_bytes())
        json_body = None if payload is None else {**payload, "fencing_token": token}
        return Request(path.format(job=job_id, token=token, sha=sha), json_body, ok=ok, headers=mine,
                       other_headers=other, content=content)
    return Case(TRAIN, build, worker=True)


W = "/api/v1/worker/jobs/{job}/training"
CASES: dict[tuple[str, str], Case] = {
    ("POST", BASE): Case(TRAIN, lambda api, o: Request(BASE, body(api, o), ok=frozenset({202})), owned=True,
                         notes="the body names the owner's private dataset: another trainer gets 404"),
    ("GET", BASE): Case(TRAIN, lambda api, o: Request(BASE)),
    ("GET", f"{BASE}/{{job_id}}"): Case(TRAIN, lambda api, o: Request(f"{BASE}/{own_training(api, o)}"),
                                        owned=True),
    ("POST", f"{BASE}/{{job_id}}/cancel"): Case(TRAIN, lambda api, o: Request(
        f"{BASE}/{own_training(api, o)}/cancel"), owned=True),
    ("DELETE", f"{BASE}/{{job_id}}"): Case(TRAIN, lambda api, o: Request(
        f"{BASE}/{own_training(api, o, cancelled=True)}", ok=frozenset({204})), owned=True),
    ("GET", f"{BASE}/{{job_id}}/events"): Case(TRAIN, lambda api, o: Request(
        f"{BASE}/{own_training(api, o, cancelled=True)}/events"), owned=True, notes="cancelled so the stream ends"),
    ("GET", f"{BASE}/{{job_id}}/artifacts"): Case(TRAIN, lambda api, o: Request(
        f"{BASE}/{own_training(api, o)}/artifacts"), owned=True),
    ("GET", f"{BASE}/{{job_id}}/artifacts/{{name}}"): Case(TRAIN, lambda api, o: Request(_artifact(api, o)),
                                                           owned=True),
    ("GET", "/api/v1/worker/jobs/{job_id}/training/images/{sha256}"): _worker_case(
        W + "/images/{sha}?fencing_token={token}", ok=frozenset({200})),
    ("GET", "/api/v1/worker/jobs/{job_id}/training/checkpoint"): _worker_case(
        W + "/checkpoint?fencing_token={token}", ok=frozenset({204})),
    ("PUT", "/api/v1/worker/jobs/{job_id}/training/checkpoint"): _worker_case(
        W + "/checkpoint?fencing_token={token}&step=2", content=b"state"),
    ("PUT", "/api/v1/worker/jobs/{job_id}/training/artifacts/{name}"): _worker_case(
        W + "/artifacts/grid.png?fencing_token={token}", content=png()),
    ("POST", "/api/v1/worker/jobs/{job_id}/training/complete"): _worker_case(
        W + "/complete", {"info": {"steps": 2}}, lora=True),
}
