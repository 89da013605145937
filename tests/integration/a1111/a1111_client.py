"""Helpers of the A1111 API tests: Basic auth with an API key, demo models in a TestClient runtime."""

from __future__ import annotations

import base64
import io

from PIL import Image, PngImagePlugin

from tests.fixtures.live import register_demo
from tests.fixtures.runtime import Api

TXT2IMG = {"prompt": "a red cube", "negative_prompt": "blurry", "steps": 3, "width": 64, "height": 64,
           "seed": 42, "cfg_scale": 5, "sampler_name": "Euler"}


def basic(username: str, key: str) -> dict[str, str]:
    """`Authorization: Basic username:api_key`, as A1111's --api-auth clients send it."""
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()}


def new_key(client, bearer: dict[str, str]) -> str:
    r = client.post("/api/v1/api-keys", headers=bearer, json={"name": "a1111"})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def png_b64(color="blue", *, size=(64, 64), mode="RGB", text: dict[str, str] | None = None) -> str:
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG", pnginfo=info)
    return base64.b64encode(buf.getvalue()).decode()


def with_demo(api: Api, demo_files) -> Api:
    register_demo(api.runtime, demo_files)
    return api
