"""Helpers for the registry tests: upload a file through the API in parts."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.fixtures.runtime import Api, make_runtime

MiB = 1024 * 1024


def unique_name(stem: str = "m", ext: str = ".safetensors") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}{ext}"


def create_upload(api: Api, headers: dict, data: bytes, **fields) -> dict:
    body = {"filename": unique_name(), "type": "Lora", "size": len(data), **fields}
    r = api.client.post("/api/v1/checkpoints/uploads", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def send_parts(api: Api, headers: dict, upload: dict, data: bytes, *, only: list[int] | None = None) -> None:
    size = upload["part_size"]
    for n in only or range(1, upload["part_count"] + 1):
        chunk = data[(n - 1) * size : n * size]
        r = api.client.put(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/parts/{n}", headers=headers,
                           content=chunk, )
        assert r.status_code == 200, r.text
        assert r.json()["sha256"] == hashlib.sha256(chunk).hexdigest()


def upload_file(api: Api, headers: dict, data: bytes, **fields):
    """Create, send every part, complete; return the completion response."""
    upload = create_upload(api, headers, data, **fields)
    send_parts(api, headers, upload, data)
    return api.client.post(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/complete", headers=headers, json={})


@pytest.fixture
def admin(api) -> dict:
    return api.admin()


@pytest.fixture
def runtime(tmp_path):
    """SQLite + local objects, cut into 5 MiB parts (the smallest S3 allows) so tests stay small."""
    rt = make_runtime(tmp_path, upload_part_size=5 * MiB)
    yield rt
    rt.services.imports.close()
    rt.database.dispose()
