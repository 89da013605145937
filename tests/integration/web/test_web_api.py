"""The web UI's API: thumbnails made once and cached (local and S3), a job's inputs, form options, preferences."""

from __future__ import annotations

import io

from PIL import Image

from sdfleet.services.job_media import THUMBNAIL_SIZE, thumbnail_key
from tests.integration.web.api_jobs import finish_next, graph_job, png


def test_thumbnails_are_made_once_kept_and_cached(backend_api):
    api = backend_api
    user = api.make_user(roles=["artist"])
    job_id = graph_job(api, user["headers"])
    finish_next(api, [png(1024, 512), png(64, 48, "blue")])
    url = f"/api/v1/inferences/{job_id}/outputs/0/thumbnail"

    r = api.client.get(url, headers=user["headers"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert "immutable" in r.headers["cache-control"] and r.headers["etag"]
    with Image.open(io.BytesIO(r.content)) as thumb:
        assert thumb.size == (THUMBNAIL_SIZE, THUMBNAIL_SIZE // 2)
    stored = api.runtime.objects.read_bytes(thumbnail_key(job_id, 0))
    assert stored == r.content, "kept in the object store beside the outputs"
    api.runtime.objects.put(thumbnail_key(job_id, 0), b"cached", content_type="image/webp")
    assert api.client.get(url, headers=user["headers"]).content == b"cached", "served from the store, not remade"
    again = api.client.get(url, headers={**user["headers"], "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""

    small = api.client.get(f"/api/v1/inferences/{job_id}/outputs/1/thumbnail", headers=user["headers"])
    with Image.open(io.BytesIO(small.content)) as thumb:
        assert thumb.size == (64, 48), "never enlarged"
    missing = api.client.get(f"/api/v1/inferences/{job_id}/outputs/7/thumbnail", headers=user["headers"])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    other = api.make_user(roles=["artist"])
    assert api.client.get(url, headers=other["headers"]).status_code == 404

    api.client.delete(f"/api/v1/inferences/{job_id}", headers=user["headers"])
    assert not api.runtime.objects.exists(thumbnail_key(job_id, 0)), "deleting the job deletes its thumbnails"


def test_a_job_lists_and_serves_its_input_image(api):
    user = api.make_user(roles=["artist"])
    job_id = graph_job(api, user["headers"])
    inputs = api.client.get(f"/api/v1/inferences/{job_id}/inputs", headers=user["headers"]).json()
    assert inputs == [{"kind": "image", "url": f"/api/v1/inferences/{job_id}/inputs/image"}]
    r = api.client.get(inputs[0]["url"], headers=user["headers"])
    assert r.status_code == 200
    with Image.open(io.BytesIO(r.content)) as image:
        assert image.size == (96, 64)
    r = api.client.get(f"/api/v1/inferences/{job_id}/inputs/mask", headers=user["headers"])
    assert r.status_code == 404 and "mask" in r.json()["error"]["message"]
    assert api.client.get(f"/api/v1/inferences/{job_id}/inputs/other", headers=user["headers"]).status_code == 422


def test_generation_options_are_the_compilers_limits(api):
    from sdfleet.engine.a1111_limits import A1111_LIMITS

    options = api.client.get("/api/v1/generation/options", headers=api.admin()).json()
    assert options["limits"]["batch_size"]["max"] == A1111_LIMITS["batch_size"].high == 64
    assert options["limits"]["width"]["multiple_of"] == 8
    assert {"name": "Euler", "comfy": "euler", "automatic_scheduler": "uniform"} in options["samplers"]
    assert {"name": "Exponential", "value": "exponential"} in options["schedulers"]
    assert options["max_work_per_request"] > 0
    r = api.client.post("/api/v1/inferences", headers=api.admin(), json={"task": "txt2img", "params": {
        "batch_size": options["limits"]["batch_size"]["max"] + 1}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "params.batch_size"


def test_preferences_are_per_user_and_checked(api):
    alice, bob = api.make_user(roles=["artist"]), api.make_user(roles=["artist"])
    assert api.client.get("/api/v1/me/preferences", headers=alice["headers"]).json() == {"theme": "system",
                                                                                         "generate": {}}
    r = api.client.patch("/api/v1/me/preferences", headers=alice["headers"],
                         json={"theme": "light", "generate": {"prompt": "a fox", "steps": "12"}})
    assert r.json() == {"theme": "light", "generate": {"prompt": "a fox", "steps": "12"}}
    assert api.client.get("/api/v1/me/preferences", headers=bob["headers"]).json()["theme"] == "system"
    r = api.client.patch("/api/v1/me/preferences", headers=alice["headers"], json={"theme": "system"})
    assert r.json() == {"theme": "system", "generate": {"prompt": "a fox", "steps": "12"}}
    for body, field in [({"theme": "blue"}, "theme"), ({"generate": {"prompt": "x" * 5000}}, "generate.prompt"),
                        ({"generate": {"nested": {"a": 1}}}, "generate.nested"),
                        ({"generate": {f"k{i}": "x" * 3000 for i in range(8)}}, "generate")]:
        r = api.client.patch("/api/v1/me/preferences", headers=alice["headers"], json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.text, r.text
    options = api.client.get("/sdapi/v1/options", headers=alice["headers"]).json()
    assert not any(key.startswith("web.") for key in options), "A1111 options do not show web preferences"
