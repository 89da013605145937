"""ComfyUI server API on the real app: shapes, per-user isolation, user data, second-port app."""

from __future__ import annotations

import base64
import io

from fastapi.testclient import TestClient
from PIL import Image

from sdfleet.api.comfy.mount import create_comfy_app


def _png(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, format="PNG")
    return buf.getvalue()


def _upload(api, headers) -> str:
    r = api.client.post("/comfy/api/upload/image", headers=headers, files={"image": ("a.png", _png(), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "input" and r.json()["subfolder"] == ""
    return r.json()["name"]


def _graph(name: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}


def test_frontend_needs_login_and_redirects(api):
    r = api.client.get("/comfy/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/comfy/"
    assert api.client.get("/comfy", follow_redirects=False).headers["location"] == "/comfy/"
    r = api.client.get("/comfy/", headers=api.admin())
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert api.client.get("/comfy/extensions/sdfleet/sdfleet.js").text.startswith("// sdfleet")


def test_startup_routes_have_the_shapes_the_frontend_needs(api):
    h = api.make_user(roles=["artist"])["headers"]
    assert api.client.get("/comfy/api/users", headers=h).json() == {}
    settings = api.client.get("/comfy/api/settings", headers=h).json()
    assert settings["Comfy.TutorialCompleted"] is True
    assert api.client.get("/comfy/api/extensions", headers=h).json() == ["/extensions/sdfleet/sdfleet.js"]
    info = api.client.get("/comfy/api/object_info", headers=h).json()
    assert info["SaveImage"]["output_node"] is True and "ckpt_name" in info["CheckpointLoaderSimple"]["input"][
        "required"]
    stats = api.client.get("/comfy/api/system_stats", headers=h).json()
    assert isinstance(stats["system"]["argv"], list) and isinstance(stats["devices"], list)
    assert api.client.get("/comfy/api/jobs?status=in_progress,pending", headers=h).json()["pagination"]["total"] == 0
    assert api.client.get("/comfy/api/users").status_code == 401


def test_prompt_validation_answers_node_errors(api):
    h = api.make_user(roles=["artist"])["headers"]
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 0, "cfg": 7.0, "sampler_name": "euler",
                                                          "scheduler": "normal", "denoise": 1.0}},
             "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}}}
    r = api.client.post("/comfy/api/prompt", headers=h, json={"prompt": graph, "client_id": "c"})
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert set(body["node_errors"]) and all("errors" in v and "class_type" in v for v in body["node_errors"].values())
    r = api.client.post("/comfy/api/prompt", headers=h, json={"client_id": "c"})
    assert r.status_code == 400 and r.json()["node_errors"] == {}


def test_two_users_cannot_see_each_others_prompts_images_settings(api):
    alice, bob = (api.make_user(roles=["artist"])["headers"] for _ in range(2))
    name = _upload(api, alice)
    r = api.client.post("/comfy/api/prompt", headers=alice, json={"prompt": _graph(name), "client_id": "a"})
    assert r.status_code == 200, r.text
    prompt_id = r.json()["prompt_id"]
    assert isinstance(r.json()["number"], int) and r.json()["node_errors"] == {}
    queue = api.client.get("/comfy/api/queue", headers=alice).json()
    assert [item[1] for item in queue["queue_pending"]] == [prompt_id]
    assert api.client.get("/comfy/api/queue", headers=bob).json() == {"queue_running": [], "queue_pending": []}
    assert api.client.get(f"/comfy/api/jobs/{prompt_id}", headers=bob).status_code == 404
    assert api.client.get(f"/comfy/api/view?filename={name}&type=input", headers=bob).status_code == 404
    assert api.client.get(f"/comfy/api/view?filename={name}&type=input", headers=alice).content[:4] == b"\x89PNG"
    # Bob's graph cannot use Alice's upload.
    r = api.client.post("/comfy/api/prompt", headers=bob, json={"prompt": _graph(name)})
    assert r.status_code == 400
    # Bob cannot delete Alice's queue item; Alice can.
    api.client.post("/comfy/api/queue", headers=bob, json={"delete": [prompt_id]})
    assert api.client.get(f"/comfy/api/jobs/{prompt_id}", headers=alice).json()["status"] == "pending"
    api.client.post("/comfy/api/interrupt", headers=bob, json={"prompt_id": prompt_id})
    assert api.client.get(f"/comfy/api/jobs/{prompt_id}", headers=alice).json()["status"] == "pending"
    # As upstream, /interrupt stops a running prompt only: Alice's queued one stays queued.
    assert api.client.post("/comfy/api/interrupt", headers=alice, json={"prompt_id": prompt_id}).status_code == 200
    assert api.client.get(f"/comfy/api/jobs/{prompt_id}", headers=alice).json()["status"] == "pending"
    assert api.client.post("/comfy/api/queue", headers=alice, json={"delete": [prompt_id]}).status_code == 200
    assert api.client.get(f"/comfy/api/jobs/{prompt_id}", headers=alice).status_code == 404
    # Settings are per user.
    api.client.post("/comfy/api/settings/Comfy.Theme", headers=alice, json="dark")
    assert api.client.get("/comfy/api/settings/Comfy.Theme", headers=alice).json() == "dark"
    assert api.client.get("/comfy/api/settings/Comfy.Theme", headers=bob).json() is None


def test_userdata_is_per_user_and_persisted(api):
    alice, bob = (api.make_user(roles=["artist"])["headers"] for _ in range(2))
    path = "/comfy/api/userdata/workflows%2Fmine.json"
    assert api.client.post(path, headers=alice, content=b'{"nodes": []}').json() == "workflows/mine.json"
    assert api.client.post(f"{path}?overwrite=false", headers=alice, content=b"{}").status_code == 409
    listing = api.client.get("/comfy/api/userdata?dir=workflows&recurse=true&full_info=true", headers=alice).json()
    assert [f["path"] for f in listing] == ["mine.json"] and listing[0]["size"] == 13
    assert api.client.get(path, headers=alice).json() == {"nodes": []}
    assert api.client.get(path, headers=bob).status_code == 404
    assert api.client.delete(path, headers=bob).status_code == 404
    assert api.client.get("/comfy/api/userdata?dir=workflows", headers=bob).json() == []
    r = api.client.post("/comfy/api/userdata/workflows%2Fmine.json/move/workflows%2Frenamed.json", headers=alice)
    assert r.json() == "workflows/renamed.json"
    assert api.client.get("/comfy/api/userdata/..%2Fescape.json", headers=alice).status_code in (404, 422)
    assert api.client.delete("/comfy/api/userdata/workflows%2Frenamed.json", headers=alice).status_code == 204


def test_stylesheets_and_node_templates_the_frontend_reads_on_open_exist_for_a_new_user(api):
    alice, bob = (api.make_user(roles=["artist"])["headers"] for _ in range(2))
    css = api.client.get("/comfy/user.css")  # index.html links it before any login
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and css.content == b""
    mine = api.client.get("/comfy/api/userdata/user.css", headers=alice)
    assert mine.status_code == 200 and mine.headers["content-type"].startswith("text/css") and mine.content == b""
    assert api.client.get("/comfy/api/userdata/comfy.templates.json", headers=alice).json() == []
    api.client.post("/comfy/api/userdata/user.css", headers=alice, content=b"body { color: red }")
    assert api.client.get("/comfy/api/userdata/user.css", headers=alice).content == b"body { color: red }"
    assert api.client.get("/comfy/api/userdata/user.css", headers=bob).content == b""
    assert api.client.get("/comfy/api/userdata/other.css", headers=alice).status_code == 404
    assert api.client.get("/comfy/api/userdata/user.css").status_code == 401


def test_cookie_writes_need_same_origin_and_manager_routes_explain(api):
    token = api.admin()["Authorization"].split()[1]
    api.client.cookies.set("sdfleet_session", token)
    try:
        assert api.client.get("/comfy/api/settings").status_code == 200
        assert api.client.post("/comfy/api/settings", json={"a": 1}).status_code == 403
        r = api.client.post("/comfy/api/settings", json={"a": 1}, headers={"Origin": "http://testserver"})
        assert r.status_code == 200
        assert api.client.post("/comfy/api/settings", json={"a": 1},
                               headers={"Origin": "http://evil.example"}).status_code == 403
    finally:
        api.client.cookies.clear()
    r = api.client.get("/comfy/api/manager/queue/status", headers=api.admin())
    assert r.status_code == 501 and "custom nodes" in r.json()["error"]["message"]


def test_comfy_port_app_serves_the_api_at_the_root_with_basic_auth(api):
    user = api.make_user(roles=["artist"])
    key = api.client.post("/api/v1/api-keys", headers=user["headers"], json={"name": "comfy"}).json()
    secret = key.get("key") or key.get("secret") or key.get("token")
    basic = {"Authorization": "Basic " + base64.b64encode(f"{user['username']}:{secret}".encode()).decode()}
    with TestClient(create_comfy_app(api.runtime.services, login_url="http://x/login")) as client:
        assert client.get("/prompt", headers=basic).json() == {"exec_info": {"queue_remaining": 0}}
        assert client.get("/api/queue", headers=basic).status_code == 200
        assert client.get("/history").status_code == 401
        r = client.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("http://x/login?next=")
        with client.websocket_connect("/ws?clientId=abc", headers=basic) as ws:
            assert ws.receive_json() == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                                     "sid": "abc"}}


def test_internal_folder_paths_name_every_model_folder(api):
    h = api.make_user(roles=["artist"])["headers"]
    folders = api.client.get("/comfy/api/models", headers=h).json()
    paths = api.client.get("/comfy/internal/folder_paths", headers=h).json()
    assert set(paths) == set(folders) and {"checkpoints", "diffusion_models", "text_encoders"} <= set(paths)
    assert all(isinstance(v, list) and len(v) == 1 for v in paths.values())
    assert api.client.get("/comfy/internal/folder_paths").status_code == 401
