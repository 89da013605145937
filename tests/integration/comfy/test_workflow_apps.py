"""Published workflows as ComfyUI Apps: inputs from App Mode's `extra.linearData`, kinds from node specs."""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from sdfleet.api.comfy.mount import create_comfy_app
from tests.fixtures.live import demo_files, register_demo  # noqa: F401 - fixture

ROOT = "6f0c2c9e-0d4c-4a51-9d0a-2b7f3c1e5a10"
GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "demo-sd15.safetensors"},
          "_meta": {"title": "Load Checkpoint"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]},
          "_meta": {"title": "Positive"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]},
          "_meta": {"title": "Negative"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "app"}},
}


def ui_graph(inputs: list) -> dict:
    """A frontend workflow as App Mode saves it (only what the server reads matters here)."""
    return {"id": ROOT, "version": 0.4, "nodes": [], "links": [],
            "extra": {"linearMode": True, "linearData": {"inputs": inputs, "outputs": [9]}}}


@pytest.fixture
def lead(api, demo_files):  # noqa: F811
    register_demo(api.runtime, demo_files)
    return api.make_user(roles=["lead-artist"])["headers"]


def test_exposed_inputs_come_from_linear_data_with_kinds_from_node_specs(api, lead):
    selection = [[f"{ROOT}:6:text", "text"], [f"{ROOT}:7:text", "text"], [3, "seed"], ["3", "sampler_name"],
                 [f"{ROOT}:4:ckpt_name", "ckpt_name", {"height": 80}], [f"{ROOT}:3:cfg", "cfg"]]
    r = api.client.post("/api/v1/workflows", headers=lead,
                        json={"name": "Cat app", "graph": GRAPH, "ui_graph": ui_graph(selection)})
    assert r.status_code == 201, r.text
    inputs = {i["name"]: i for i in r.json()["inputs"]}
    assert list(inputs) == ["text_6", "text_7", "seed", "sampler_name", "ckpt_name", "cfg"]
    assert inputs["text_6"] | {} == {"name": "text_6", "node": "6", "input": "text", "label": "Positive: text",
                                     "type": "string", "default": "a cat", "min": None, "max": None,
                                     "choices": None}
    assert (inputs["seed"]["type"], inputs["seed"]["min"], inputs["seed"]["max"]) == ("int", 0, 0xffffffffffffffff)
    assert (inputs["cfg"]["type"], inputs["cfg"]["min"], inputs["cfg"]["max"]) == ("float", 0.0, 100.0)
    assert inputs["sampler_name"]["type"] == "choice" and {"euler", "dpmpp_2m"} <= set(inputs["sampler_name"]["choices"])
    # A checkpoint picker offers the publisher's checkpoints, and each of them is pinned by sha256.
    assert inputs["ckpt_name"]["choices"] == ["demo-sd15.safetensors", "demo-sdxl.safetensors"]
    pinned = {m["name"]: m["sha256"] for m in r.json()["models"]}
    assert set(pinned) == {"demo-sd15.safetensors", "demo-sdxl.safetensors"}
    assert all(len(sha) == 64 for sha in pinned.values())

    # Artists run it with the exposed inputs only; the kinds inferred above are enforced.
    artist = api.make_user(roles=["artist"])["headers"]
    r = api.client.post("/api/v1/workflows/Cat app/runs", headers=artist,
                        json={"inputs": {"text_6": "a dog", "sampler_name": "dpmpp_2m", "seed": 9}})
    assert r.status_code == 202, r.text
    r = api.client.post("/api/v1/workflows/Cat app/runs", headers=artist, json={"inputs": {"sampler_name": "nope"}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "inputs.sampler_name"
    r = api.client.post("/api/v1/workflows/Cat app/runs", headers=artist, json={"inputs": {"cfg": 101}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "inputs.cfg"


def test_comfy_type_names_and_left_out_bounds(api, lead):
    body = {"name": "Typed", "graph": GRAPH, "inputs": [
        {"name": "steps", "node": "3", "input": "steps", "type": "INT"},
        {"name": "sampler", "node": "3", "input": "sampler_name", "type": "COMBO"},
        {"name": "prompt", "node": "6", "input": "text", "type": "STRING"},
        {"name": "width", "node": "5", "input": "width"},
        {"name": "denoise", "node": "3", "input": "denoise", "type": "FLOAT", "max": 0.9, "default": 0.5}]}
    r = api.client.post("/api/v1/workflows", headers=lead, json=body)
    assert r.status_code == 201, r.text
    inputs = {i["name"]: i for i in r.json()["inputs"]}
    assert (inputs["steps"]["type"], inputs["steps"]["min"], inputs["steps"]["max"]) == ("int", 1, 10000)
    assert inputs["sampler"]["type"] == "choice" and "euler" in inputs["sampler"]["choices"]
    assert inputs["prompt"]["type"] == "string" and inputs["width"]["type"] == "int"
    assert (inputs["denoise"]["min"], inputs["denoise"]["max"], inputs["denoise"]["default"]) == (0.0, 0.9, 0.5)
    # Declared inputs win over a selection in the ui_graph; no declaration and no selection: nothing exposed.
    r = api.client.post("/api/v1/workflows", headers=lead, json={
        **body, "ui_graph": ui_graph([[3, "seed"]])})
    assert [i["name"] for i in r.json()["inputs"]] == ["steps", "sampler", "prompt", "width", "denoise"]
    r = api.client.post("/api/v1/workflows", headers=lead, json={"name": "Plain", "graph": GRAPH})
    assert r.status_code == 201 and r.json()["inputs"] == []


@pytest.mark.parametrize(("field", "inputs", "selection", "expected"), [
    ("inputs[0].type", [{"name": "a", "node": "3", "input": "seed", "type": "LATENT"}], None, "ComfyUI's INT"),
    ("inputs[0].type", [{"name": "a", "node": "3", "input": "seed", "type": "Int"}], None, "must be one of"),
    ("inputs[0].default", [{"name": "a", "node": "3", "input": "seed", "type": "INT", "default": -1}], None,
     "at least 0"),
    ("ui_graph.extra.linearData.inputs[0]", None, [[12, "seed"]], "node 12 is not in the graph"),
    ("ui_graph.extra.linearData.inputs[0]", None, [[3, "control_after_generate"]], "not an input of node 3"),
    ("ui_graph.extra.linearData.inputs[1]", None, [[3, "seed"], ["other-graph:2:seed", "seed"]], "subgraph"),
    ("ui_graph.extra.linearData.inputs[0]", None, [["3"]], "[widget id, widget name]"),
    ("ui_graph.extra.linearData.inputs", None, "seed", "must be a list"),
])
def test_bad_declarations_and_selections_name_the_field(api, lead, field, inputs, selection, expected):
    body = {"name": "Bad", "graph": copy.deepcopy(GRAPH)}
    if inputs is not None:
        body["inputs"] = inputs
    if selection is not None:
        body["ui_graph"] = ui_graph(selection)
    r = api.client.post("/api/v1/workflows", headers=lead, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == field and expected in r.json()["error"]["message"], r.json()
    assert api.client.get("/api/v1/workflows/Bad", headers=lead).status_code == 404  # nothing half-written


@pytest.fixture(params=["main", "comfy-port"])
def comfy(request, api):
    """(client, API prefix) of each ComfyUI listener: `/comfy/api` on the main app, `/api` on ComfyUI's port."""
    if request.param == "main":
        yield api.client, "/comfy/api"
    else:
        with TestClient(create_comfy_app(api.runtime.services, login_url="http://x/login")) as client:
            yield client, "/api"


def _pending(client, base, headers) -> list:
    return client.get(f"{base}/queue", headers=headers).json()["queue_pending"]


def test_apps_in_user_data_open_in_app_mode_and_run_as_the_published_workflow(api, lead, comfy):
    client, base = comfy
    artist = api.make_user(roles=["artist"])["headers"]
    selection = [[f"{ROOT}:6:text", "text", {"height": 120}], [3, "seed"]]
    r = api.client.post("/api/v1/workflows", headers=lead, json={
        "name": "Cat app", "graph": GRAPH, "ui_graph": ui_graph(selection)})
    assert r.status_code == 201, r.text
    api.client.post("/api/v1/workflows", headers=lead, json={"name": "No frontend workflow", "graph": GRAPH})
    client.post(f"{base}/userdata/workflows%2Fmine.json", headers=artist, content=b"{}")

    # 1. Listed where the frontend looks for workflows; `*.app.json` puts it under Apps.
    r = client.get(f"{base}/userdata?dir=workflows&recurse=true&split=false&full_info=true", headers=artist)
    assert r.status_code == 200
    listed = {f["path"]: f for f in r.json()}
    assert set(listed) == {"mine.json", "Published/Cat app.app.json"}, listed
    assert client.get(f"{base}/userdata?dir=workflows%2FPublished", headers=artist).json() == ["Cat app.app.json"]

    # 2. The file opens in App Mode with the exposed inputs as its form, and says which app it is.
    r = client.get(f"{base}/userdata/workflows%2FPublished%2FCat%20app.app.json", headers=artist)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert len(r.content) == listed["Published/Cat app.app.json"]["size"]
    document = r.json()
    assert document["id"] == ROOT and document["extra"]["linearMode"] is True
    assert document["extra"]["linearData"] == {"inputs": [[f"{ROOT}:6:text", "text", {"height": 120}],
                                                          [f"{ROOT}:3:seed", "seed"]], "outputs": [9]}
    assert document["extra"]["sdfleet"] == {"app": "Cat app", "version": 1}

    # 3. Read-only: saving, deleting or moving into the folder is refused.
    path = f"{base}/userdata/workflows%2FPublished%2FCat%20app.app.json"
    assert client.post(path, headers=artist, content=b"{}").status_code == 403
    assert client.delete(path, headers=artist).status_code == 403
    r = client.post(f"{base}/userdata/workflows%2Fmine.json/move/workflows%2FPublished%2Fx.app.json", headers=artist)
    assert r.status_code == 403

    # 4. Run from App Mode: the exposed inputs' values are taken, everything else is the published graph.
    sent = copy.deepcopy(GRAPH)
    sent["6"]["inputs"]["text"] = "a dog"
    sent["3"]["inputs"]["seed"] = 77
    sent["3"]["inputs"]["steps"] = 50  # not exposed: ignored
    r = client.post(f"{base}/prompt", headers=artist, json={
        "prompt": sent, "client_id": "tab-1", "extra_data": {"extra_pnginfo": {"workflow": document}}})
    assert r.status_code == 200, r.text
    [item] = _pending(client, base, artist)
    assert item[1] == r.json()["prompt_id"] and item[3]["client_id"] == "tab-1"
    queued = item[2]
    assert queued["6"]["inputs"]["text"] == "a dog" and queued["3"]["inputs"]["seed"] == 77
    assert queued["3"]["inputs"]["steps"] == 2
    job = api.client.get(f"/api/v1/inferences/{item[1]}", headers=artist).json()
    assert job["source"] == "workflow"
    r = client.post(f"{base}/prompt", headers=artist, json={
        "prompt": {**sent, "3": {**sent["3"], "inputs": {**sent["3"]["inputs"], "seed": -4}}},
        "extra_data": {"extra_pnginfo": {"workflow": document}}})
    assert r.status_code == 400 and "seed must be at least 0" in r.json()["error"]["message"]

    # 5. A new version replaces the file; the old one's runs are refused until the app is opened again.
    api.client.post("/api/v1/workflows", headers=lead, json={
        "name": "Cat app", "graph": GRAPH, "ui_graph": ui_graph([[3, "seed"]])})
    r = client.get(f"{base}/userdata?dir=workflows&recurse=true&full_info=true", headers=artist)
    assert "Published/Cat app.app.json" in {f["path"] for f in r.json()}
    assert client.get(path, headers=artist).json()["extra"]["sdfleet"]["version"] == 2
    r = client.post(f"{base}/prompt", headers=artist, json={
        "prompt": sent, "extra_data": {"extra_pnginfo": {"workflow": document}}})
    assert r.status_code == 400 and "open it again from Apps" in r.json()["error"]["message"]

    # 6. Unpublished: gone from the listing, the file is a 404 and a run from an open tab is refused.
    for version in (2, 1):
        api.client.post(f"/api/v1/workflows/Cat app/versions/{version}/unpublish", headers=lead)
    r = client.get(f"{base}/userdata?dir=workflows&recurse=true&full_info=true", headers=artist)
    assert [f["path"] for f in r.json()] == ["mine.json"]
    assert client.get(path, headers=artist).status_code == 404
    r = client.post(f"{base}/prompt", headers=artist, json={
        "prompt": sent, "extra_data": {"extra_pnginfo": {"workflow": document}}})
    assert r.status_code == 400 and "not published for you" in r.json()["error"]["message"]


def test_roles_hide_apps_and_refuse_their_runs(api, lead, comfy):
    client, base = comfy
    artist = api.make_user(roles=["artist"])["headers"]
    role = api.make_role(permissions=["inference:all"])
    member = api.make_user(roles=[role])["headers"]
    r = api.client.post("/api/v1/workflows", headers=lead, json={
        "name": "Team app", "graph": GRAPH, "ui_graph": ui_graph([[3, "seed"]]), "allowed_roles": [role]})
    assert r.status_code == 201
    path = f"{base}/userdata/workflows%2FPublished%2FTeam%20app.app.json"
    document = client.get(path, headers=member).json()
    assert client.get(f"{base}/userdata?dir=workflows&recurse=true", headers=artist).json() == []
    assert client.get(path, headers=artist).status_code == 404
    r = client.post(f"{base}/prompt", headers=artist, json={
        "prompt": GRAPH, "extra_data": {"extra_pnginfo": {"workflow": document}}})
    assert r.status_code == 400 and "not published for you" in r.json()["error"]["message"]
    assert api.client.post("/api/v1/workflows/Team app/runs", headers=artist, json={}).status_code == 404
    r = client.post(f"{base}/prompt", headers=member, json={
        "prompt": GRAPH, "extra_data": {"extra_pnginfo": {"workflow": document}}})
    assert r.status_code == 200, r.text

    # A lead artist who changed more than the exposed inputs runs a draft: an ordinary prompt of theirs.
    draft = copy.deepcopy(GRAPH)
    draft["3"]["inputs"]["steps"] = 3
    r = client.post(f"{base}/prompt", headers=lead, json={
        "prompt": draft, "extra_data": {"extra_pnginfo": {"workflow": document}}})
    assert r.status_code == 200, r.text
    [item] = _pending(client, base, lead)
    assert item[2]["3"]["inputs"]["steps"] == 3
    assert api.client.get(f"/api/v1/inferences/{item[1]}", headers=lead).json()["source"] == "comfy"
    # Publishing a workflow saved from an app does not keep the app's marker.
    r = api.client.post("/api/v1/workflows", headers=lead, json={"name": "Team app 2", "graph": GRAPH,
                                                                  "ui_graph": document})
    assert "sdfleet" not in r.json()["ui_graph"]["extra"]


def test_what_the_apps_sidebar_and_app_mode_fetch_exists(api, comfy):
    client, base = comfy
    artist = api.make_user(roles=["artist"])["headers"]
    # the sidebars' bookmarks, before the user has any
    r = client.get(f"{base}/userdata/workflows%2F.index.json", headers=artist)
    assert r.status_code == 200 and r.json() == {"favorites": []}
    # App Mode's landing image is asked for at the site root, whatever the frontend's base path
    r = client.get("/assets/images/app-mode-landing.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_a_held_version_reaches_artists_once_someone_else_approves_it(api, lead, comfy):
    client, base = comfy
    artist = api.make_user(roles=["artist"])["headers"]
    other_lead = api.make_user(roles=["lead-artist"])
    body = {"name": "Held", "graph": GRAPH, "ui_graph": ui_graph([[3, "seed"]])}
    assert api.client.post("/api/v1/workflows", headers=lead, json=body).status_code == 201
    r = api.client.post("/api/v1/workflows", headers=lead, json={**body, "requires_approval": True})
    assert r.status_code == 201 and r.json()["current"] is False
    assert (r.json()["requires_approval"], r.json()["approved_by"]) == (True, None)
    path = f"{base}/userdata/workflows%2FPublished%2FHeld.app.json"
    # Artists keep version 1 until version 2 is approved; it cannot be published around the approval.
    assert client.get(path, headers=artist).json()["extra"]["sdfleet"]["version"] == 1
    assert api.client.get("/api/v1/workflows/Held", headers=artist).json()["version"] == 1
    r = api.client.post("/api/v1/workflows/Held/versions/2/publish", headers=lead)
    assert r.status_code == 409
    r = api.client.post("/api/v1/workflows", headers=lead, json={**body, "requires_approval": "yes"})
    assert r.status_code == 422
    # Not by its author, nor by an artist; by another lead artist (or an admin)
    assert api.client.post("/api/v1/workflows/Held/versions/2/approve", headers=lead).status_code == 403
    assert api.client.post("/api/v1/workflows/Held/versions/2/approve", headers=artist).status_code == 403
    assert api.client.post("/api/v1/workflows/Held/versions/1/approve", headers=other_lead["headers"]).status_code == 409
    r = api.client.post("/api/v1/workflows/Held/versions/2/approve", headers=other_lead["headers"])
    assert r.status_code == 200, r.text
    approver = api.client.get("/api/v1/me", headers=other_lead["headers"]).json()["id"]
    assert r.json()["current"] is True and r.json()["approved_by"] == approver and r.json()["approved_at"]
    assert client.get(path, headers=artist).json()["extra"]["sdfleet"]["version"] == 2
    versions = api.client.get("/api/v1/workflows/Held/versions", headers=lead).json()["items"]
    assert [(v["version"], v["requires_approval"], v["approved_by"]) for v in versions] == [
        (2, True, approver), (1, False, None)]
    assert api.client.post("/api/v1/workflows/Held/versions/2/approve", headers=api.admin()).status_code == 409
    # An admin may approve a version of their own
    admin = api.admin()
    api.client.post("/api/v1/workflows", headers=admin, json={**body, "requires_approval": True})
    assert api.client.post("/api/v1/workflows/Held/versions/3/approve", headers=admin).status_code == 200
