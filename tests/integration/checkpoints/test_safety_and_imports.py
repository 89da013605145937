"""Pickles are never unpickled in the server; URL imports work from an allow-listed host, SSRF is refused."""

import hashlib
import http.server
import io
import os
import pickle
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sdfleet.bootstrap import build_app
from tests.fixtures.runtime import Api, make_runtime
from tests.integration.checkpoints.conftest import upload_file
from tests.integration.checkpoints.model_bytes import LORA_KEY, lora_bytes


class _Sentinel:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_crafted_pickle_is_refused_and_never_runs(api, admin, tmp_path):
    sentinel = tmp_path / "pwned"
    data = pickle.dumps({"state_dict": _Sentinel(sentinel)}, protocol=2)
    r = upload_file(api, admin, data, filename="evil.ckpt", type="Stable-diffusion")
    assert r.status_code == 422, r.text
    assert "pickle" in r.json()["error"]["message"]
    assert not sentinel.exists()
    assert [o.key for o in api.runtime.objects.list("")] == []


def test_pickle_lora_is_converted_to_safetensors(api, admin):
    import torch

    buffer = io.BytesIO()
    torch.save({f"{LORA_KEY}.lora_down.weight": torch.zeros(4, 768, dtype=torch.float16),
                f"{LORA_KEY}.lora_up.weight": torch.zeros(320, 4, dtype=torch.float16),
                f"{LORA_KEY}.alpha": torch.tensor(4.0, dtype=torch.float16)}, buffer)
    data = buffer.getvalue()
    r = upload_file(api, admin, data, filename="old-style.pt", sha256=hashlib.sha256(data).hexdigest())
    assert r.status_code == 200, r.text
    ckpt = r.json()
    assert ckpt["name"] == "old-style.safetensors" and ckpt["format"] == "safetensors"
    stored = api.client.get(f"/api/v1/checkpoints/{ckpt['id']}/download", headers=admin).content
    assert hashlib.sha256(stored).hexdigest() == ckpt["sha256"] != hashlib.sha256(data).hexdigest()


@pytest.fixture
def model_server():
    """A local HTTP server handing out a LoRA (the kind of host SSRF rules refuse)."""
    body = lora_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/files/style.safetensors":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], body
    server.shutdown()


def test_import_from_allow_listed_host(tmp_path, model_server):
    port, body = model_server
    rt = make_runtime(tmp_path, import_allowed_hosts=[f"127.0.0.1:{port}"])
    try:
        with TestClient(build_app(rt)) as client:
            api = Api(client=client, runtime=rt)
            admin = api.admin()
            r = client.post("/api/v1/checkpoints/imports", headers=admin,
                            json={"url": f"http://127.0.0.1:{port}/files/style.safetensors", "type": "Lora"})
            assert r.status_code == 202 and r.json()["status"] == "queued", r.text
            rt.services.imports.wait()
            job = client.get(f"/api/v1/checkpoints/imports/{r.json()['id']}", headers=admin).json()
            assert job["status"] == "succeeded", job
            assert job["bytes_done"] == job["bytes_total"] == len(body)
            ckpt = client.get(f"/api/v1/checkpoints/{job['checkpoint_id']}", headers=admin).json()
            assert ckpt["name"] == "style.safetensors" and ckpt["source"] == "import"
            assert ckpt["sha256"] == hashlib.sha256(body).hexdigest()
            # A missing file fails the import with the server's answer.
            r = client.post("/api/v1/checkpoints/imports", headers=admin,
                            json={"url": f"http://127.0.0.1:{port}/nope.safetensors", "type": "Lora"})
            rt.services.imports.wait()
            job = client.get(f"/api/v1/checkpoints/imports/{r.json()['id']}", headers=admin).json()
            assert job["status"] == "failed" and "404" in job["error"]
    finally:
        rt.services.imports.close()
        rt.database.dispose()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/files/style.safetensors",
    "http://localhost:{port}/files/style.safetensors",
    "http://2130706433:{port}/files/style.safetensors",
    "http://0x7f.1:{port}/files/style.safetensors",
    "http://[::1]:{port}/files/style.safetensors",
    "http://[::ffff:127.0.0.1]:{port}/files/style.safetensors",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/model.safetensors",
    "http://user@127.0.0.1:{port}/x",
    "file:///etc/passwd",
    "ftp://127.0.0.1/x.safetensors",
])
def test_ssrf_targets_are_refused_without_an_allow_list(api, admin, model_server, url):
    port, _ = model_server
    r = api.client.post("/api/v1/checkpoints/imports", headers=admin,
                        json={"url": url.format(port=port), "type": "Lora"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"] == {"field": "url", "reason": "url_refused"}
    assert api.client.get("/api/v1/checkpoints", headers=admin).json()["items"] == []
