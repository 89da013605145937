"""Publish as a lead artist, run as an artist through exposed inputs only, unpublish."""

from __future__ import annotations

import io

from PIL import Image


def _upload(api, headers) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(buf, format="PNG")
    r = api.client.post("/api/v1/inputs", headers=headers, files={"image": ("a.png", buf.getvalue(), "image/png")})
    return r.json()["name"]


def test_publish_run_hidden_input_unpublish(api):
    lead = api.make_user(roles=["lead-artist"])["headers"]
    artist = api.make_user(roles=["artist"])["headers"]
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "lead"}}}
    body = {"name": "Portrait", "graph": graph, "inputs": [
        {"name": "image", "node": "1", "input": "image", "label": "Photo", "type": "image"}]}
    assert api.client.post("/api/v1/workflows", headers=artist, json=body).status_code == 403
    r = api.client.post("/api/v1/workflows", headers=lead, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["current"] is True
    assert api.client.post("/api/v1/workflows", headers=lead, json=body).json()["version"] == 2
    assert [w["name"] for w in api.client.get("/api/v1/workflows", headers=artist).json()["items"]] == ["Portrait"]

    image = _upload(api, artist)
    r = api.client.post("/api/v1/workflows/Portrait/runs", headers=artist, json={"inputs": {"image": image}})
    assert r.status_code == 202, r.text
    job = api.client.get(f"/api/v1/inferences/{r.json()['id']}", headers=artist).json()
    assert job["source"] == "workflow"
    # A hidden input cannot change.
    r = api.client.post("/api/v1/workflows/Portrait/runs", headers=artist,
                        json={"inputs": {"image": image, "filename_prefix": "mine"}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "inputs.filename_prefix"
    r = api.client.post("/api/v1/workflows/Portrait/runs", headers=artist, json={"inputs": {"image": 5}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "inputs.image"

    # Unpublishing the current version falls back to the previous one; unpublishing all hides the workflow.
    r = api.client.post("/api/v1/workflows/Portrait/versions/2/unpublish", headers=lead)
    assert r.status_code == 200 and r.json()["published"] is False
    assert api.client.get("/api/v1/workflows/Portrait", headers=artist).json()["version"] == 1
    api.client.post("/api/v1/workflows/Portrait/versions/1/unpublish", headers=lead)
    assert api.client.get("/api/v1/workflows/Portrait", headers=artist).status_code == 404
    assert api.client.post("/api/v1/workflows/Portrait/runs", headers=artist,
                           json={"inputs": {"image": image}}).status_code == 404
    assert api.client.post("/api/v1/workflows/Portrait/versions/2/publish", headers=lead).json()["current"] is True
    versions = api.client.get("/api/v1/workflows/Portrait/versions", headers=lead).json()["items"]
    assert [(v["version"], v["published"]) for v in versions] == [(2, True), (1, False)]


def test_roles_limit_visibility_and_bad_declarations_name_the_field(api):
    lead = api.make_user(roles=["lead-artist"])["headers"]
    artist = api.make_user(roles=["artist"])["headers"]
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    r = api.client.post("/api/v1/workflows", headers=lead,
                        json={"name": "Secret", "graph": graph, "allowed_roles": ["lead-artist"]})
    assert r.status_code == 201
    assert api.client.get("/api/v1/workflows/Secret", headers=artist).status_code == 404
    r = api.client.post("/api/v1/workflows", headers=lead, json={"name": "Bad", "graph": graph, "inputs": [
        {"name": "img", "node": "2", "input": "images", "type": "string"}]})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "inputs[0].input"
    r = api.client.post("/api/v1/workflows", headers=lead, json={"name": "Bad", "graph": {
        "1": {"class_type": "NoSuchNode", "inputs": {}}}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_graph"
