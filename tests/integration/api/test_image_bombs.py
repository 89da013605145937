"""Decompression bombs on every image-accepting route of a real `sdfleet serve` process: each is a 422
naming the limit, and the server's peak memory stays flat (a decoded 12000×12000 RGBA image is 576 MB)."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import httpx
import pytest

from tests.fixtures.images import png_bomb, png_image
from tests.fixtures.serve import start_serve

LIMIT = 4096 * 4096
MAX_PEAK_GROWTH_KIB = 100 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = start_serve(tmp_path_factory.mktemp("bombs"))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb(12000, 12000)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def _routes(server, headers: dict, original: str, dataset_id: str):
    """(name, send(image bytes) → response) for every route that accepts an image, on every listener."""
    main, comfy = server.url, server.comfy_url

    def post(url, **parts):
        return lambda image: httpx.post(url, headers=headers, timeout=60, **{k: f(image) for k, f in parts.items()})

    ref = json.dumps({"filename": original, "type": "input", "subfolder": ""})
    # A valid image with a bad sampler stores the image, then fails compiling: the warm-up decodes once.
    a1111 = {"prompt": "x", "steps": 1, "width": 64, "height": 64, "sampler_name": "no-such-sampler"}
    return [
        ("sdapi png-info", post(f"{main}/sdapi/v1/png-info", json=lambda i: {"image": _b64(i)})),
        ("sdapi extra-single-image", post(f"{main}/sdapi/v1/extra-single-image", json=lambda i: {
            "image": _b64(i), "upscaler_1": "no-such-upscaler"})),
        ("sdapi extra-batch-images", post(f"{main}/sdapi/v1/extra-batch-images", json=lambda i: {
            "imageList": [{"data": _b64(i), "name": "b.png"}], "upscaler_1": "no-such-upscaler"})),
        ("sdapi img2img init", post(f"{main}/sdapi/v1/img2img", json=lambda i: {**a1111, "init_images": [_b64(i)]})),
        ("sdapi img2img mask", post(f"{main}/sdapi/v1/img2img", json=lambda i: {
            **a1111, "init_images": [_b64(png_image(64, 64))], "mask": _b64(i)})),
        ("sdapi txt2img controlnet unit", post(f"{main}/sdapi/v1/txt2img", json=lambda i: {
            **a1111, "alwayson_scripts": {"controlnet": {"args": [{"image": _b64(i), "model": "x"}]}}})),
        ("api inferences init", post(f"{main}/api/v1/inferences", json=lambda i: {
            "task": "img2img", "params": {**a1111, "init_images": [f"data:image/png;base64,{_b64(i)}"]}})),
        ("api inferences mask", post(f"{main}/api/v1/inferences", json=lambda i: {
            "task": "img2img", "params": {**a1111, "init_images": [_b64(png_image(64, 64))], "mask": _b64(i)}})),
        ("api inputs", post(f"{main}/api/v1/inputs", files=lambda i: {"image": ("b.png", i, "image/png")})),
        ("comfy /comfy/api/upload/image", post(f"{main}/comfy/api/upload/image",
                                               files=lambda i: {"image": ("b.png", i, "image/png")})),
        ("comfy /comfy/upload/mask", post(f"{main}/comfy/upload/mask", files=lambda i: {
            "image": ("m.png", i, "image/png")}, data=lambda i: {"original_ref": ref})),
        ("comfy port /upload/image", post(f"{comfy}/upload/image",
                                          files=lambda i: {"image": ("b.png", i, "image/png")})),
        ("comfy port /api/upload/mask", post(f"{comfy}/api/upload/mask", files=lambda i: {
            "image": ("m.png", i, "image/png")}, data=lambda i: {"original_ref": ref})),
        ("api datasets image", post(f"{main}/api/v1/datasets/{dataset_id}/images",
                                    files=lambda i: {"file": ("b.png", i, "image/png")})),
        ("api datasets zip", post(f"{main}/api/v1/datasets/{dataset_id}/images",
                                  files=lambda i: {"file": ("set.zip", _zip("10_cube/b.png", i), "application/zip")})),
    ]


def test_bombs_are_refused_naming_the_limit_and_memory_stays_flat(server, bomb):
    token = server.token()
    key = httpx.post(f"{server.url}/api/v1/api-keys", headers={"Authorization": f"Bearer {token}"},
                     json={"name": "bombs"}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{server.comfy_url}/upload/image", headers=headers,
                   files={"image": ("a.png", png_image(64, 64, mode="RGBA"), "image/png")})
    assert r.status_code == 200, r.text
    dataset = httpx.post(f"{server.url}/api/v1/datasets", headers=headers, json={"name": "bombs", "resolution": 64})
    assert dataset.status_code == 201, dataset.text
    routes = _routes(server, headers, r.json()["name"], dataset.json()["id"])

    # 1. Warm every route with an ordinary image (imports, pools, first allocations), then take the peak.
    for name, send in routes:
        answer = send(png_image(64, 64, mode="RGBA"))
        assert answer.status_code < 500, (name, answer.status_code, answer.text[:300])
    baseline = server.status_kib("VmHWM")

    # 2. Three rounds of bombs on every route.
    for _ in range(3):
        for name, send in routes:
            answer = send(bomb)
            assert answer.status_code in (413, 422), (name, answer.status_code, answer.text[:300])
            assert "x-request-id" in answer.headers, name
            error = answer.json()["error"]
            assert str(LIMIT) in error["message"] and "SDFLEET_MAX_IMAGE_PIXELS" in error["message"], (name, error)
            assert error["details"]["max_pixels"] == LIMIT, (name, error)
    growth = server.status_kib("VmHWM") - baseline
    print(f"serve peak RSS {baseline / 1024:.0f} MB before, +{growth / 1024:.1f} MB after "
          f"{3 * len(routes)} bombs of {len(bomb) // 1024} KiB (12000x12000 RGBA)")
    assert growth < MAX_PEAK_GROWTH_KIB, f"peak RSS grew by {growth} KiB"
