"""Gallery search in SQL with paging, stars, boards, team browsing, bulk zip and delete, prompt history, the
queue view with positions and cancel rights; on SQLite + local and PostgreSQL + S3."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest

from sdfleet.store.types import utcnow
from tests.fixtures.live import register_demo
from tests.integration.web.api_jobs import finish_next, png

SD15, SDXL = "demo-sd15.safetensors", "demo-sdxl.safetensors"


@pytest.fixture
def gallery_api(backend_api, demo_files):
    register_demo(backend_api.runtime, demo_files)
    return backend_api


def submit(api, headers, prompt: str, model: str = SD15, negative: str = "") -> str:
    r = api.client.post("/api/v1/inferences", headers=headers, json={"task": "txt2img", "params": {
        "prompt": prompt, "negative_prompt": negative, "steps": 2, "width": 64, "height": 64,
        "override_settings": {"sd_model_checkpoint": model}}})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [item["job"]["id"] for item in r.json()["items"]]


def test_search_stars_boards_and_team_browsing(gallery_api):
    api = gallery_api
    alice = api.make_user(roles=["artist"])
    lead = api.make_user(roles=["lead-artist"])
    a = alice["headers"]
    fox = submit(api, a, "a red Fox in 100% snow")
    finish_next(api, [png(64, 64), png(64, 64, "blue")], worker="w1")
    cat = submit(api, a, "a black cat", model=SDXL)
    finish_next(api, [png(64, 64)], worker="w2")
    owl = submit(api, a, "an owl at night")
    api.client.post(f"/api/v1/inferences/{owl}/cancel", headers=a)
    theirs = submit(api, lead["headers"], "the lead's fox")

    get = lambda query="", headers=a: api.client.get(f"/api/v1/gallery{query}", headers=headers)  # noqa: E731
    assert ids(get()) == [owl, cat, fox]
    assert ids(get("?q=FOX")) == [fox], "words match the prompt case-insensitively"
    assert ids(get("?q=100%25")) == [fox] and ids(get("?q=_")) == [], "% and _ are literal"
    assert ids(get("?q=red+snow")) == [fox] and ids(get("?q=red+owl")) == []
    assert ids(get(f"?model={SDXL}")) == [cat]
    assert ids(get("?status=cancelled")) == [owl]
    later = (utcnow() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert ids(get(f"?since={later}")) == [] and ids(get(f"?until={later}")) == [owl, cat, fox]
    first = get("?limit=2")
    assert ids(first) == [owl, cat] and first.json()["next_cursor"]
    assert ids(get(f"?limit=2&cursor={first.json()['next_cursor']}")) == [fox]
    item = get("?q=fox").json()["items"][0]
    assert item["owner"] == alice["username"] and len(item["outputs"]) == 2
    assert api.client.get(item["outputs"][1]["url"], headers=a).headers["cache-control"].endswith("immutable")
    assert sorted(api.client.get("/api/v1/gallery/models", headers=a).json()) == [SD15, SDXL]

    # Stars and boards are the caller's own.
    assert api.client.put(f"/api/v1/gallery/{cat}/star", headers=a).status_code == 204
    assert ids(get("?starred=true")) == [cat]
    board = api.client.post("/api/v1/boards", headers=a, json={"name": "Keepers"}).json()
    assert api.client.post("/api/v1/boards", headers=a, json={"name": "Keepers"}).status_code == 409
    r = api.client.post(f"/api/v1/boards/{board['id']}/items", headers=a, json={"job_ids": [fox, cat, fox]})
    assert r.json()["item_count"] == 2
    assert ids(get(f"?board={board['id']}")) == [cat, fox]
    assert get(f"?board={board['id']}").json()["items"][0]["board_ids"] == [board["id"]]
    api.client.delete(f"/api/v1/boards/{board['id']}/items/{cat}", headers=a)
    assert ids(get(f"?board={board['id']}")) == [fox]
    assert get(f"?board={board['id']}", headers=lead["headers"]).status_code == 404, "boards are not shared"

    # The team: a lead artist (gallery:all) browses everyone's; an artist may not.
    assert get("?scope=team").status_code == 403
    assert ids(get("?scope=team&q=fox", headers=lead["headers"])) == [theirs, fox]
    assert ids(get(f"?owner={alice['username']}&q=fox", headers=lead["headers"])) == [fox]
    assert api.client.get(f"/api/v1/gallery/{fox}/outputs/0", headers=lead["headers"]).status_code == 200
    assert api.client.get(f"/api/v1/inferences/{fox}/outputs/0/thumbnail", headers=lead["headers"]).status_code == 200
    assert api.client.put(f"/api/v1/gallery/{fox}/star", headers=lead["headers"]).status_code == 204
    assert get("?q=fox&scope=team", headers=lead["headers"]).json()["items"][1]["starred"] is True
    assert get("?starred=true").json()["items"][0]["job"]["id"] == cat, "a teammate's star is not mine"
    assert api.client.get(f"/api/v1/gallery/{theirs}", headers=a).status_code == 404

    # Bulk: a zip of everything viewable; deleting is the owner's, all or nothing.
    r = api.client.post("/api/v1/gallery/download", headers=lead["headers"], json={"job_ids": [fox, cat]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = sorted(zipfile.ZipFile(io.BytesIO(r.content)).namelist())
    assert names == sorted([f"{alice['username']}/{cat}-0.png", f"{alice['username']}/{fox}-0.png",
                            f"{alice['username']}/{fox}-1.png"])
    r = api.client.post("/api/v1/gallery/delete", headers=lead["headers"], json={"job_ids": [theirs, fox]})
    assert r.status_code == 404 and r.json()["error"]["details"]["job_id"] == fox
    assert api.client.get(f"/api/v1/gallery/{theirs}", headers=lead["headers"]).status_code == 200, "all or nothing"
    r = api.client.post("/api/v1/gallery/delete", headers=a, json={"job_ids": [fox, owl]})
    assert r.json() == {"deleted": 2} and ids(get()) == [cat]
    assert api.client.post("/api/v1/gallery/delete", headers=a, json={"job_ids": []}).status_code == 422


def test_prompt_history_and_the_queue_view(gallery_api):
    api = gallery_api
    alice, bob = api.make_user(roles=["artist"]), api.make_user(roles=["artist"])
    lead = api.make_user(roles=["lead-artist"])
    a1 = submit(api, alice["headers"], "first fox", negative="blurry")
    b1 = submit(api, bob["headers"], "bob's cat")
    a2 = submit(api, alice["headers"], "second owl")
    a3 = submit(api, alice["headers"], "first fox", negative="blurry")

    history = api.client.get("/api/v1/me/prompts", headers=alice["headers"]).json()
    assert history == [{"prompt": "first fox", "negative_prompt": "blurry"},
                       {"prompt": "second owl", "negative_prompt": ""}]
    assert api.client.get("/api/v1/me/prompts?q=OWL", headers=alice["headers"]).json() == [history[1]]

    mine = api.client.get("/api/v1/queue", headers=alice["headers"]).json()
    assert mine["everyone"] is False and mine["queued"] == 4 and mine["running"] == 0
    assert [(e["id"], e["position"]) for e in mine["items"]] == [(a1, 1), (a2, 3), (a3, 4)], \
        "fair order: bob's first job goes before alice's second"
    assert api.client.get("/api/v1/queue?scope=everyone", headers=alice["headers"]).status_code == 403
    everyone = api.client.get("/api/v1/queue?scope=everyone", headers=lead["headers"]).json()
    assert [(e["id"], e["owner"], e["can_cancel"]) for e in everyone["items"]] == [
        (a1, alice["username"], True), (b1, bob["username"], True), (a2, alice["username"], True),
        (a3, alice["username"], True)]

    assert api.client.post(f"/api/v1/queue/{b1}/cancel", headers=alice["headers"]).status_code == 404
    r = api.client.post(f"/api/v1/queue/{b1}/cancel", headers=lead["headers"])
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert api.client.post(f"/api/v1/queue/{a2}/cancel", headers=alice["headers"]).json()["status"] == "cancelled"
    positions = [(e["id"], e["position"]) for e in api.client.get("/api/v1/queue", headers=alice["headers"]).json()["items"]]
    assert positions == [(a1, 1), (a3, 2)]
