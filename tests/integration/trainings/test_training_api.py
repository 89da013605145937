"""POST /api/v1/trainings: every bad field is a 4xx naming it, with nothing queued; trainings pin their dataset
and base model; without `train:all` an artist gets 403. (No worker: nothing here trains.)"""

from __future__ import annotations

import pytest

from tests.fixtures.live import register_demo
from tests.integration.datasets.images import png
from tests.integration.trainings.training_fleet import BASE

DATASETS = "/api/v1/datasets"


@pytest.fixture
def trainer_api(api, demo_files):
    register_demo(api.runtime, demo_files)
    r = api.client.patch("/api/v1/endpoints/default", headers=api.admin(), json={"kinds": ["inference", "train"]})
    assert r.status_code == 200, r.text
    return api


def _trainer(api) -> dict:
    return api.make_user(roles=[api.make_role(permissions=["train:all"])])["headers"]


def _dataset(api, headers, *, images: int = 1, resolution: int = 64) -> str:
    r = api.client.post(DATASETS, headers=headers, json={"name": f"d{images}-{resolution}", "resolution": resolution})
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    for i in range(images):
        r = api.client.post(f"{DATASETS}/{dataset_id}/images", headers=headers,
                            files={"file": (f"{i}.png", png(64, 64, (i * 40, 10, 10)))})
        assert r.status_code == 201, r.text
    return dataset_id


def _body(dataset_id: str, **changes) -> dict:
    return {"name": "sks", "base_model": "demo-sd15.safetensors", "dataset_id": dataset_id, "max_train_steps": 4,
            **changes}


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"base_model": "nope.safetensors"}, "base_model", "not a checkpoint you may use"),
    ({"base_model": "demo-lora.safetensors"}, "base_model", "not a checkpoint you may use"),
    ({"base_model": "demo-sdxl.safetensors"}, "base_model", "sdxl checkpoint, which trains at 256-2048"),
    ({"network_rank": 0}, "network_rank", "1-256"),
    ({"network_rank": 512}, "network_rank", "1-256"),
    ({"network_rank": "8"}, "network_rank", ""),
    ({"network_alpha": 0}, "network_alpha", "above 0"),
    ({"unet_lr": 2.0}, "unet_lr", "at most 1"),
    ({"unet_lr": -1e-4}, "unet_lr", "above 0"),
    ({"text_encoder_lr": 3}, "text_encoder_lr", "0-1"),
    ({"resolution": 100}, "resolution", "multiple of 64"),
    ({"resolution": 128}, "resolution", "must not exceed the dataset's (64"),
    ({"optimizer": "AdamW8bit"}, "optimizer", "AdamW8bit needs bitsandbytes on a CUDA device"),
    ({"optimizer": "Lion"}, "optimizer", "one of AdamW, AdamW8bit"),
    ({"lr_scheduler": "cosine_annealing"}, "lr_scheduler", "one of constant"),
    ({"max_train_steps": None}, "max_train_steps", "exactly one of the two"),
    ({"epochs": 2}, "max_train_steps", "exactly one of the two"),
    ({"train_batch_size": 0}, "train_batch_size", "1-64"),
    ({"save_every_n_steps": 0}, "save_every_n_steps", "1 or more"),
    ({"caption_dropout_rate": 1.5}, "caption_dropout_rate", "0-1"),
    ({"mixed_precision": "fp8"}, "mixed_precision", "one of no, fp16, bf16"),
    ({"samples": {"prompts": ["x"] * 9}}, "samples.prompts", ""),
    ({"samples": {"prompts": ["x"], "width": 100}}, "samples.width", "multiple of 8"),
    ({"name": "bad/name"}, "name", ""),
    ({"bogus": 1}, "bogus", "unknown field"),
])
def test_each_bad_field_is_named_and_nothing_is_queued(trainer_api, changes, field, words):
    api = trainer_api
    me = _trainer(api)
    body = {k: v for k, v in _body(_dataset(api, me), **changes).items() if v is not None}
    r = api.client.post(BASE, headers=me, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    fields = [error["details"].get("field")] + [e["field"] for e in error["details"].get("errors", [])]
    assert field in fields, error
    assert words in error["message"] + " ".join(e.get("message", "") for e in error["details"].get("errors", []))
    assert api.client.get(BASE, headers=me).json()["items"] == []


def test_datasets_names_and_endpoints(trainer_api):
    api = trainer_api
    me, other = _trainer(api), _trainer(api)
    mine = _dataset(api, me)
    # Another user's private dataset is not found; an empty one is refused by reason.
    r = api.client.post(BASE, headers=other, json=_body(mine))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.client.post(BASE, headers=me, json=_body(_dataset(api, me, images=0)))
    assert r.status_code == 422 and r.json()["error"]["details"] == {"field": "dataset_id", "reason": "empty"}
    # A LoRA name already in the registry is a conflict.
    r = api.client.post(BASE, headers=me, json=_body(mine, name="demo-lora"))
    assert r.status_code == 409 and r.json()["error"]["details"]["field"] == "name"
    # A queued training pins its dataset and base model.
    r = api.client.post(BASE, headers=me, json=_body(mine, allowed_roles=["artist"]))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    training = api.client.get(f"{BASE}/{job_id}", headers=me).json()
    assert training["status"] == "queued" and training["parameters"]["resolution"] == 64
    assert training["name"] == "sks.safetensors" and training["endpoint"] == "default"
    assert api.client.get(f"{BASE}/{job_id}", headers=other).status_code == 404
    r = api.client.delete(f"{DATASETS}/{mine}", headers=me)
    assert r.status_code == 409 and job_id in r.json()["error"]["message"]
    base = next(c for c in api.client.get("/api/v1/checkpoints?name=demo-sd15", headers=api.admin()).json()["items"])
    r = api.client.delete(f"/api/v1/checkpoints/{base['id']}", headers=api.admin())
    assert r.status_code == 409 and job_id in r.json()["error"]["message"]
    # A queued training cancels at once; then it can be deleted, and the dataset too.
    assert api.client.delete(f"{BASE}/{job_id}", headers=me).status_code == 409
    assert api.client.post(f"{BASE}/{job_id}/cancel", headers=me).json()["status"] == "cancelled"
    assert api.client.delete(f"{BASE}/{job_id}", headers=me).status_code == 204
    assert api.client.delete(f"{DATASETS}/{mine}", headers=me).status_code == 204
    # No endpoint whose workers may train: 409 naming the endpoint field.
    api.client.patch("/api/v1/endpoints/default", headers=api.admin(), json={"kinds": ["inference"]})
    r = api.client.post(BASE, headers=me, json=_body(_dataset(api, me)))
    assert r.status_code == 409 and r.json()["error"]["details"]["field"] == "endpoint"
    assert '"train"' in r.json()["error"]["message"]


def test_an_artist_without_train_all_gets_403(trainer_api):
    api = trainer_api
    artist = api.make_user(roles=["artist"])["headers"]
    dataset = _dataset(api, _trainer(api))
    assert api.client.post(BASE, headers=artist, json=_body(dataset)).status_code == 403
    assert api.client.get(BASE, headers=artist).status_code == 403
    assert api.client.post(DATASETS, headers=artist, json={"name": "x", "resolution": 64}).status_code == 403
