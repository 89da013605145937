"""`sdfleet models`: the resumable upload client, and the demo models `serve` registers on an empty registry."""

import hashlib

import pytest
from fastapi.testclient import TestClient

from sdfleet.bootstrap import build_app
from sdfleet.cli_models import ApiClient, ensure_demo_models, upload_file
from tests.integration.checkpoints.model_bytes import sized_lora_bytes


class _Killed(BaseException):
    """Stands for the client process being killed mid-upload."""


def _client(api, headers, *, die_after: int | None = None) -> ApiClient:
    client = ApiClient.__new__(ApiClient)
    http = TestClient(build_app(api.runtime), base_url="http://testserver/api/v1", headers=headers)
    puts = []
    original = http.request

    def request(method, url, **kwargs):
        if method == "PUT":
            if die_after is not None and len(puts) == die_after:
                raise _Killed()
            puts.append(url)
        return original(method, url, **kwargs)

    http.request = request
    client._http = http
    client.puts = puts
    return client


def test_killed_upload_resumes_on_the_next_run(api, admin, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "big-style.safetensors"
    data = sized_lora_bytes(16)  # four parts of 5 MiB
    path.write_bytes(data)
    first = _client(api, admin, die_after=2)
    with pytest.raises(_Killed):
        upload_file(first, path, model_type="Lora", name=None, roles=None, server="test")
    second = _client(api, admin)
    checkpoint = upload_file(second, path, model_type="Lora", name=None, roles=None, server="test")
    assert [u.rsplit("/", 1)[1] for u in second.puts] == ["3", "4"]  # only the parts the first run did not send
    assert checkpoint["name"] == "big-style.safetensors"
    assert checkpoint["sha256"] == hashlib.sha256(data).hexdigest()
    assert not list((tmp_path / "cache").rglob("*.json"))  # the resume state is gone once registered


def test_demo_models_are_registered_once_and_listed_by_type_and_architecture(api, admin):
    created = ensure_demo_models(api.runtime.services.checkpoints)
    assert sorted(c.name for c in created) == ["demo-lora.safetensors", "demo-sd15.safetensors",
                                               "demo-sdxl.safetensors"]
    assert ensure_demo_models(api.runtime.services.checkpoints) == []
    artist = api.make_user(roles=["artist"])["headers"]

    def names(query):
        return sorted(c["name"] for c in api.client.get(f"/api/v1/checkpoints?{query}", headers=artist).json()["items"])

    assert names("type=Stable-diffusion") == ["demo-sd15.safetensors", "demo-sdxl.safetensors"]
    assert names("type=Stable-diffusion&architecture=sdxl") == ["demo-sdxl.safetensors"]
    assert names("type=Lora&architecture=sd1") == ["demo-lora.safetensors"]
