"""Model notes: trigger words, notes and a preview made from a generated image (local and S3)."""

from __future__ import annotations

import io

from PIL import Image

from tests.fixtures.live import register_demo
from tests.integration.web.api_jobs import finish_next, graph_job, png


def test_notes_and_preview_from_a_generated_image(backend_api, demo_files):
    api = backend_api
    register_demo(api.runtime, demo_files)
    lead = api.make_user(roles=["lead-artist", "artist"])["headers"]
    artist = api.make_user(roles=["artist"])["headers"]
    models = api.client.get("/api/v1/checkpoints?type=Stable-diffusion", headers=lead).json()["items"]
    sd15 = next(m["id"] for m in models if m["name"] == "demo-sd15.safetensors")

    assert api.client.get("/api/v1/model-notes", headers=artist).json() == []
    r = api.client.put(f"/api/v1/checkpoints/{sd15}/notes", headers=artist, json={"trigger_words": "x"})
    assert r.status_code == 403
    r = api.client.put(f"/api/v1/checkpoints/{sd15}/notes", headers=lead,
                       json={"trigger_words": " sks style ", "notes": "best at CFG 5"})
    assert r.json() == {"checkpoint_id": sd15, "trigger_words": "sks style", "notes": "best at CFG 5",
                        "preview_url": None}

    first = graph_job(api, lead)
    finish_next(api, [png(512, 256)], worker="a")
    r = api.client.put(f"/api/v1/checkpoints/{sd15}/preview", headers=lead, json={"job_id": first, "index": 0})
    assert r.status_code == 200, r.text
    url = r.json()["preview_url"]
    image = api.client.get(url, headers=artist)
    assert image.status_code == 200 and image.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(image.content)) as preview:
        assert preview.size == (256, 128)
    listed = api.client.get("/api/v1/model-notes", headers=artist).json()
    assert listed == [{"checkpoint_id": sd15, "trigger_words": "sks style", "notes": "best at CFG 5", "preview_url": url}]

    second = graph_job(api, lead)
    finish_next(api, [png(64, 64, "blue")], worker="b")
    r = api.client.put(f"/api/v1/checkpoints/{sd15}/preview", headers=lead, json={"job_id": second, "index": 0})
    assert r.json()["preview_url"] != url, "a new preview gets a new URL (the old one is cached for good)"
    assert [o.key for o in api.runtime.objects.list(f"previews/checkpoints/{sd15}/")] == [
        f"previews/checkpoints/{sd15}/{second}-0.webp"], "the old preview is deleted"
    r = api.client.put(f"/api/v1/checkpoints/{sd15}/preview", headers=lead, json={"job_id": second, "index": 3})
    assert r.status_code == 404 and r.json()["error"]["details"]["field"] == "index"
    other = graph_job(api, artist)
    r = api.client.put(f"/api/v1/checkpoints/{sd15}/preview", headers=lead, json={"job_id": other, "index": 0})
    assert r.status_code == 404, "a teammate's job (gallery:all) with no image yet"
