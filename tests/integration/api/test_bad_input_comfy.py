"""Bad input on both ComfyUI listeners (`/comfy/api`, `/comfy` on the main app; `/` and `/api` on ComfyUI's own
port), as tests/integration/api/test_bad_input.py does for /api/v1: every answer is a 4xx carrying an error
object and the request id, never a 500, and nothing is half-written."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from sdfleet.api.comfy.mount import create_comfy_app
from sdfleet.bootstrap import build_app
from tests.fixtures.images import png_bomb, png_image
from tests.fixtures.runtime import Api, make_runtime

ODD_STRINGS = ["x" * 100_000, "\u0000nul", "\ud800", "a\u202eb", "", "../../etc/passwd", "..", ".", "名前",
               "%00", "a/../../b"]
WRONG_BODIES = ['{"a":', "not json", "[1,2", "\x00", "[]", '"string"', "7", "null", "true"]
DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000


@pytest.fixture(scope="module")
def listeners(tmp_path_factory):
    """(client, prefix) for every place the ComfyUI API is served, and an artist's headers."""
    runtime = make_runtime(tmp_path_factory.mktemp("comfy-bad-input"))
    with TestClient(build_app(runtime, local_workers=0), raise_server_exceptions=False) as main, \
            TestClient(create_comfy_app(runtime.services, login_url="/login"), raise_server_exceptions=False) as port:
        api = Api(client=main, runtime=runtime)
        headers = api.make_user(roles=["artist"])["headers"]
        yield [(main, "/comfy/api"), (main, "/comfy"), (port, ""), (port, "/api")], headers
    runtime.database.dispose()


def assert_error(r, context) -> None:
    """A 4xx whose body is an error object with a message (sdfleet's envelope or ComfyUI's prompt error)."""
    assert 400 <= r.status_code < 500, (context, r.status_code, r.text[:300])
    assert r.headers.get("x-request-id"), context
    error = r.json()["error"]
    assert isinstance(error, dict) and error.get("message"), (context, r.text[:300])


JSON_WRITES = ["/prompt", "/queue", "/interrupt", "/history", "/settings", "/settings/Comfy.Foo",
               "/sdfleet/workflows"]


def test_malformed_and_wrong_json_bodies(listeners):
    clients, headers = listeners
    send = {**headers, "content-type": "application/json"}
    for client, prefix in clients:
        for path in JSON_WRITES:
            for raw in WRONG_BODIES + [DEEP, DEEP_OBJECT]:
                r = client.post(prefix + path, content=raw, headers=send)
                if r.status_code < 400:  # a value of any type is a valid setting; empty queue/history changes
                    assert path.startswith(("/settings/", "/queue", "/history", "/interrupt")) and raw not in (
                        '{"a":', "not json", "[1,2", "\x00", DEEP, DEEP_OBJECT), (prefix + path, raw[:20], r.text)
                    continue
                assert_error(r, (prefix + path, raw[:20]))


def test_odd_strings_in_every_field(listeners):
    clients, headers = listeners
    client, prefix = clients[0]
    bodies = {
        "/prompt": lambda s: {"prompt": {s: {"class_type": s, "inputs": {s: s}}}, "client_id": s, "prompt_id": s},
        "/queue": lambda s: {"delete": [s], "clear": s},
        "/history": lambda s: {"delete": [s]},
        "/interrupt": lambda s: {"prompt_id": s},
        "/sdfleet/workflows": lambda s: {"name": s, "description": s, "graph": {s: s}, "allowed_roles": [s]},
        "/settings": lambda s: {s: s},
    }
    for path, body in bodies.items():
        for odd in ODD_STRINGS:
            r = client.post(prefix + path, content=json.dumps(body(odd)),
                            headers={**headers, "content-type": "application/json"})
            assert r.status_code < 500, (path, repr(odd)[:30], r.text[:300])
            if r.status_code >= 400:
                assert_error(r, (path, repr(odd)[:30]))


# (`..` path segments are resolved by the HTTP client before sending; the query spellings reach the server.)
@pytest.mark.parametrize("path", [
    "/view?filename=..&type=input", "/view?filename=.&type=input", "/view?filename=%00&type=input",
    "/view?filename=a%00b&type=output", "/view?filename=../x&type=input", "/view?filename=x&type=nope",
    "/view?filename=x&type=input&subfolder=..", "/view?filename=" + "a" * 400, "/view",
    "/view?filename=%2e%2e&type=input", "/view?filename=..%5c..%5cx&type=input",
    "/jobs/%ED%A0%80", "/jobs/%00", "/jobs?limit=0", "/jobs?sort_order=sideways", "/history?max_items=-1",
    "/models/%00", "/models/%2e%2e", "/userdata?dir=..", "/userdata?dir=%00", "/userdata?dir=",
    "/userdata/%2e%2e%2Fx", "/userdata/%00", "/userdata/a%00b.json",
])
def test_odd_paths_and_queries(listeners, path):
    clients, headers = listeners
    for client, prefix in clients:
        assert_error(client.get(prefix + path, headers=headers), prefix + path)


@pytest.mark.parametrize("path", ["/history/%00", "/history/%ED%A0%80", "/object_info/%00", "/settings/%00"])
def test_unknown_ids_answer_as_comfyui_does(listeners, path):
    """ComfyUI answers an unknown prompt id, node class or setting with an empty object / null, not an error."""
    clients, headers = listeners
    for client, prefix in clients:
        r = client.get(prefix + path, headers=headers)
        assert r.status_code == 200 and r.json() in ({}, None), (prefix + path, r.text[:200])


def test_uploads_refuse_what_is_not_an_image_and_write_nothing(listeners):
    clients, headers = listeners
    for client, prefix in clients:
        before = client.get(f"{prefix}/userdata?dir=x", headers=headers)
        for data in (b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, png_bomb(5000, 5000)):
            r = client.post(f"{prefix}/upload/image", headers=headers, files={"image": ("a.png", data, "image/png")})
            assert_error(r, (prefix, data[:8]))
        for ref in ("not json", "[]", json.dumps({"filename": ".."}), json.dumps({"filename": "\u0000"})):
            r = client.post(f"{prefix}/upload/mask", headers=headers, data={"original_ref": ref},
                            files={"image": ("m.png", png_image(), "image/png")})
            assert_error(r, (prefix, ref))
        r = client.post(f"{prefix}/upload/image", headers=headers)  # no file at all
        assert_error(r, (prefix, "no file"))
        assert client.get(f"{prefix}/userdata?dir=x", headers=headers).status_code == before.status_code


def test_userdata_paths(listeners):
    clients, headers = listeners
    client, prefix = clients[2]
    for path in ("%2e%2e", "%2e%2e%2Fx", "a%2F..%2F..%2Fb", "%00", "a" * 600, "a%0Ab", "%1B"):
        for method in ("GET", "POST", "DELETE"):
            r = client.request(method, f"{prefix}/userdata/{path}", headers=headers, content=b"{}")
            assert_error(r, (method, path))
    assert client.post(f"{prefix}/userdata/a.json", headers=headers, content=b"{}").status_code == 200
    r = client.post(f"{prefix}/userdata/a.json/move/%2e%2e", headers=headers)
    assert_error(r, "move to ..")
