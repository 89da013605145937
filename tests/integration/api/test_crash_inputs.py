"""The inputs that used to answer 500 and drop the request id (issue 11, item 5), walked on every listener: each is
a 4xx with an error object and `x-request-id`; and an unexpected error is a 500 envelope that keeps the id and
the connection."""

from __future__ import annotations

import base64
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from sdfleet.api.comfy.mount import create_comfy_app
from sdfleet.bootstrap import build_app
from tests.fixtures.images import png_bomb
from tests.fixtures.live import free_port
from tests.fixtures.runtime import Api, make_runtime
from tests.integration.api.test_bad_input_comfy import DEEP, DEEP_OBJECT, assert_error

COMFY = [("main", "/comfy/api"), ("main", "/comfy"), ("port", ""), ("port", "/api")]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    runtime = make_runtime(tmp_path_factory.mktemp("crash-inputs"))
    with TestClient(build_app(runtime, local_workers=0), raise_server_exceptions=False) as main, \
            TestClient(create_comfy_app(runtime.services, login_url="/login"), raise_server_exceptions=False) as port:
        api = Api(client=main, runtime=runtime)
        yield {"main": main, "port": port}, api.make_user(roles=["artist"])["headers"], api.admin()
    runtime.database.dispose()


def _chain(length: int) -> dict:
    graph = {"0": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    for i in range(1, length):
        graph[str(i)] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": [str(i - 1), 0], "amount": 1}}
    return graph


LOAD_DOTDOT = {"1": {"class_type": "LoadImage", "inputs": {"image": ".."}},
               "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}


@pytest.mark.parametrize(("listener", "prefix"), COMFY)
def test_comfy_inputs(apps, listener, prefix):
    clients, headers, _ = apps
    client = clients[listener]
    for name in ("..", ".", "%00", "a%00b", "..%2F..%2Fsecret"):
        assert_error(client.get(f"{prefix}/view?type=input&filename={name}", headers=headers), (prefix, name))
    for path in ("/prompt", "/settings", "/settings/Comfy.X"):
        for raw in (DEEP, DEEP_OBJECT, '{"prompt":' + DEEP_OBJECT + "}"):
            assert_error(client.post(prefix + path, content=raw, headers={**headers, **JSON}), (prefix, path))
    for graph in (LOAD_DOTDOT, _chain(1200)):
        r = client.post(f"{prefix}/prompt", json={"prompt": graph}, headers=headers)
        assert_error(r, (prefix, len(graph)))
    assert "1000" in client.post(f"{prefix}/prompt", json={"prompt": _chain(1200)}, headers=headers).text
    r = client.post(f"{prefix}/upload/image", headers=headers, files={"image": ("b.png", png_bomb(5000, 5000))})
    assert_error(r, (prefix, "bomb"))


def test_native_and_a1111_inputs(apps):
    clients, headers, admin = apps
    client = clients["main"]
    for graph in (LOAD_DOTDOT, _chain(1200)):
        assert_error(client.post("/api/v1/inferences", json={"graph": graph}, headers=headers), len(graph))
    for path in ("/api/v1/inferences", "/sdapi/v1/txt2img", "/sdapi/v1/options", "/api/v1/workflows"):
        for raw in (DEEP, DEEP_OBJECT, '{"graph":' + DEEP_OBJECT + "}"):
            assert_error(client.post(path, content=raw, headers={**headers, **JSON}), path)
    job = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    for value in (b"\xb2", "²".encode(), b"-1", b"1e3", b"99999999999999999999999"):
        r = client.get(f"/api/v1/inferences/{job}/events", headers={**headers, "Last-Event-ID": value})
        assert_error(r, value)
        assert r.json()["error"]["details"]["field"] == "last-event-id"
    assert_error(client.get(f"/api/v1/inferences/{job}/events?after=99999999999999999999999", headers=headers),
                 "after")
    for url in ("http://example.com:\u00b2/m.safetensors", "http://example.com:\u0661\u0662/m.safetensors",
                "http://example.com:99999/m.safetensors", "http://[::1:\u00b2/m.safetensors"):
        r = client.post("/api/v1/checkpoints/imports", headers=admin, json={"url": url, "type": "Stable-diffusion"})
        assert_error(r, url)
    bomb = png_bomb(5000, 5000)
    assert_error(client.post("/sdapi/v1/png-info", headers=headers, json={"image": base64.b64encode(bomb).decode()}),
                 "png-info")
    assert_error(client.post("/api/v1/inputs", headers=headers, files={"image": ("b.png", bomb, "image/png")}),
                 "inputs")


def _serve(app) -> tuple[uvicorn.Server, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("which", ["main", "comfy port"])
def test_an_unexpected_error_is_a_500_envelope_with_the_request_id(tmp_path, which):
    runtime = make_runtime(tmp_path)
    app = build_app(runtime, local_workers=0) if which == "main" else create_comfy_app(runtime.services,
                                                                                         login_url="/login")

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the frontend's catch-all static mount
    server, url = _serve(app)
    try:
        with httpx.Client(base_url=url) as client:
            r = client.get("/boom", headers={"X-Request-ID": "trace-me-1"})
            assert r.status_code == 500 and r.headers["x-request-id"] == "trace-me-1"
            assert r.json()["error"] == {"code": "internal_error", "details": {"request_id": "trace-me-1"},
                                         "message": "internal error; the request id identifies it in the logs"}
            first = r.extensions["network_stream"].get_extra_info("client_addr")
            again = client.get("/boom")  # the same keep-alive connection still serves
            assert again.status_code == 500 and again.headers["x-request-id"] != "trace-me-1"
            assert again.extensions["network_stream"].get_extra_info("client_addr") == first
    finally:
        server.should_exit = True
        runtime.database.dispose()
