"""The worker side of trainings on SQLite + local objects and PostgreSQL + S3, spoken by hand: claim a `train`
job, read its dataset by hash, store checkpoints (the latest is served back, older ones dropped), store
artifacts, complete → the LoRA is registered with the trainer's visibility; a stale token writes nothing."""

from __future__ import annotations

from tests.fixtures.live import register_demo
from tests.integration.datasets.images import png
from tests.integration.trainings.training_fleet import BASE

W = "/api/v1/worker/jobs/{job}/training"


def test_worker_protocol_of_a_training(backend_api, demo_files):
    api = backend_api
    register_demo(api.runtime, demo_files)
    admin = api.admin()
    assert api.client.patch("/api/v1/endpoints/default", headers=admin,
                            json={"kinds": ["inference", "train"]}).status_code == 200
    me = api.make_user(roles=[api.make_role(permissions=["train:all"])])["headers"]
    dataset = api.client.post("/api/v1/datasets", headers=me, json={"name": "p", "resolution": 64}).json()
    image = png(64, 64, (1, 2, 3))
    api.client.post(f"/api/v1/datasets/{dataset['id']}/images", headers=me, files={"file": ("a.png", image)},
                    data={"caption": "sks"})
    r = api.client.post(BASE, headers=me, json={"name": "proto", "base_model": "demo-sd15.safetensors",
                                                "dataset_id": dataset["id"], "max_train_steps": 4,
                                                "allowed_roles": ["lead-artist"]})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    worker = {"Authorization": f"Bearer {api.runtime.services.workers.register(name='w', endpoint='default').token}"}
    # 1. The claim carries the kind and the training: base model pin, dataset manifest, parameters.
    claimed = api.client.post("/api/v1/worker/claim", headers=worker, json={"wait_seconds": 0}).json()
    assert claimed["kind"] == "train" and claimed["id"] == job_id and claimed["graph"] == {}
    training, token = claimed["training"], claimed["fencing_token"]
    assert [m["name"] for m in claimed["models"]] == ["demo-sd15.safetensors"]
    assert training["config"]["max_train_steps"] == 4 and training["lora"]["allowed_roles"] == ["lead-artist"]
    base = W.format(job=job_id)
    sha = training["dataset"]["images"][0]["sha256"]
    r = api.client.get(f"{base}/images/{sha}", params={"fencing_token": token}, headers=worker)
    assert r.status_code == 200 and r.content == image
    assert api.client.get(f"{base}/images/{'0' * 64}", params={"fencing_token": token},
                          headers=worker).status_code == 404
    assert api.client.get(f"/api/v1/worker/models/{training['base']['sha256']}", headers=worker).status_code == 200
    # 2. Checkpoints: none yet; two stored, the later is served back and the earlier dropped.
    assert api.client.get(f"{base}/checkpoint", params={"fencing_token": token}, headers=worker).status_code == 204
    for step in (1, 2):
        r = api.client.put(f"{base}/checkpoint", params={"fencing_token": token, "step": step}, headers=worker,
                           content=f"state {step}".encode())
        assert r.status_code == 204, r.text
    r = api.client.get(f"{base}/checkpoint", params={"fencing_token": token}, headers=worker)
    assert r.status_code == 200 and r.content == b"state 2" and r.headers["x-step"] == "2"
    assert [a["name"] for a in api.client.get(f"{BASE}/{job_id}/artifacts", headers=me).json()] == \
        ["checkpoints/00000002.pt"]
    # 3. Progress with metrics, then artifacts; a name a worker may not write is refused.
    r = api.client.post(f"/api/v1/worker/jobs/{job_id}/heartbeat", headers=worker, json={
        "fencing_token": token, "value": 3, "max": 4, "metrics": {"loss": 0.25, "lr": 1e-4}})
    assert r.status_code == 200, r.text
    shown = api.client.get(f"{BASE}/{job_id}", headers=me).json()["progress"]
    assert (shown["step"], shown["max_steps"], shown["loss"], shown["lr"]) == (3, 4, 0.25, 1e-4)
    r = api.client.put(f"{base}/artifacts/../../models/x", params={"fencing_token": token}, headers=worker,
                       content=b"x")
    assert r.status_code in (404, 422)
    r = api.client.put(f"{base}/artifacts/notes.txt", params={"fencing_token": token}, headers=worker, content=b"x")
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "name"
    r = api.client.post(f"{base}/complete", headers=worker, json={"fencing_token": token, "info": {}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "artifacts"
    lora = demo_files["demo-lora"].read_bytes()
    assert api.client.put(f"{base}/artifacts/lora.safetensors", params={"fencing_token": token}, headers=worker,
                          content=lora).status_code == 204
    # 4. A stale token is refused; the holder completes and the LoRA is registered.
    r = api.client.put(f"{base}/checkpoint", params={"fencing_token": token + 1, "step": 3}, headers=worker,
                       content=b"stale")
    assert r.status_code == 409
    r = api.client.post(f"{base}/complete", headers=worker, json={"fencing_token": token, "info": {"steps": 4}})
    assert r.status_code == 204, r.text
    job = api.client.get(f"{BASE}/{job_id}", headers=me).json()
    assert job["status"] == "succeeded" and job["info"] == {"steps": 4} and job["lora"]["name"] == "proto.safetensors"
    record = api.client.get(f"/api/v1/checkpoints/{job['lora']['id']}", headers=admin).json()
    assert record["type"] == "Lora" and record["allowed_roles"] == ["lead-artist"] and record["source"] == "training"
    assert api.client.post(f"{base}/complete", headers=worker,
                           json={"fencing_token": token, "info": {}}).status_code == 409
    # The dataset is free again.
    assert api.client.delete(f"/api/v1/datasets/{dataset['id']}", headers=me).status_code == 204
