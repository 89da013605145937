"""Deleting a user deletes their objects: input images, job outputs (and thumbnails), dataset images.
Another user's objects and the models the deleted user registered stay (README, "Security")."""

from __future__ import annotations

from tests.integration.web.api_jobs import finish_next, graph_job, png


def _keys(api, prefix: str) -> list[str]:
    return sorted(info.key for info in api.runtime.objects.list(prefix))


def _owned_objects(api, user: dict) -> dict[str, str]:
    """An input image, a finished job with an output and its thumbnail, a dataset image; returns their ids."""
    job_id = graph_job(api, user["headers"])
    assert finish_next(api, [png()], worker=f"w-{user['username']}") == job_id
    r = api.client.get(f"/api/v1/inferences/{job_id}/outputs/0/thumbnail", headers=user["headers"])
    assert r.status_code == 200, r.text
    r = api.client.post("/api/v1/datasets", headers=user["headers"], json={"name": "set", "resolution": 512})
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    r = api.client.post(f"/api/v1/datasets/{dataset_id}/images", headers=user["headers"],
                        files={"file": ("a.png", png(256, 256, "blue"))}, data={"caption": "a blue square"})
    assert r.status_code == 201, r.text
    return {"job": job_id, "dataset": dataset_id}


def test_deleting_a_user_deletes_their_objects_and_nothing_else(backend_api):
    api = backend_api
    role = api.make_role(permissions=["inference:all", "train:all"])
    gone, kept = api.make_user(roles=[role]), api.make_user(roles=[role])
    gone_ids, kept_ids = _owned_objects(api, gone), _owned_objects(api, kept)
    gone_id = api.runtime.services.users.get(None, gone["username"]).id
    kept_id = api.runtime.services.users.get(None, kept["username"]).id
    prefixes = {"gone": [f"inputs/{gone_id}/", f"outputs/{gone_ids['job']}/", f"datasets/{gone_ids['dataset']}/"],
                "kept": [f"inputs/{kept_id}/", f"outputs/{kept_ids['job']}/", f"datasets/{kept_ids['dataset']}/"]}
    before = {who: {p: _keys(api, p) for p in ps} for who, ps in prefixes.items()}
    assert all(before["gone"].values()) and all(before["kept"].values()), before
    assert any("thumbs/" in k for k in before["gone"][f"outputs/{gone_ids['job']}/"])
    models = _keys(api, "models/")

    r = api.client.delete(f"/api/v1/users/{gone['username']}", headers=api.admin())
    assert r.status_code == 204, r.text

    assert {p: _keys(api, p) for p in prefixes["gone"]} == {p: [] for p in prefixes["gone"]}
    assert {p: _keys(api, p) for p in prefixes["kept"]} == before["kept"]
    assert _keys(api, "models/") == models
    r = api.client.get("/api/v1/audit", headers=api.admin(), params={"action": "user.delete",
                                                                      "target": gone["username"]})
    assert r.json()["items"][0]["details"] == {"object_prefixes": 4}  # inputs; the job's outputs and training artifacts; the dataset
