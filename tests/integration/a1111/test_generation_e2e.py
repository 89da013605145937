"""A1111 clients on the fleet: a real server, a real worker subprocess, the demo models, raw HTTP."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import time

import httpx
import numpy as np
from PIL import Image

from tests.integration.a1111.a1111_client import TXT2IMG, basic, png_b64


def _user(fleet, admin) -> dict[str, str]:
    """A new artist with an API key, as Basic auth headers."""
    name = f"a{time.monotonic_ns() % 10**9}"
    r = httpx.post(f"{fleet.url}/api/v1/users", headers=admin,
                   json={"username": name, "password": "user-password-1", "roles": ["artist"]})
    assert r.status_code == 201, r.text
    bearer = fleet.login(name, "user-password-1")
    key = httpx.post(f"{fleet.url}/api/v1/api-keys", headers=bearer, json={"name": "k"}).json()["key"]
    return basic(name, key)


def test_txt2img_and_img2img_with_basic_auth(fleet):
    admin = fleet.login()
    headers = _user(fleet, admin)
    fleet.start_worker("a")
    r = httpx.post(f"{fleet.url}/sdapi/v1/txt2img", headers=headers, json={**TXT2IMG, "batch_size": 2},
                   timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 2
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    assert image.size == (64, 64) and "Seed: 42" in image.info["parameters"]
    info = json.loads(body["info"])
    assert info["seed"] == 42 and info["all_seeds"] == [42, 43]
    # Each image's infotext is read from its PNG (the engine writes the batch's seed into both).
    assert len(info["infotexts"]) == 2 and all("Steps: 3" in t for t in info["infotexts"])
    sd15 = next(m for m in httpx.get(f"{fleet.url}/sdapi/v1/sd-models", headers=headers).json()
                if m["model_name"] == "demo-sd15")
    assert info["sd_model_name"] == "demo-sd15" and info["sd_model_hash"] == sd15["hash"]
    assert body["parameters"]["prompt"] == TXT2IMG["prompt"] and body["parameters"]["batch_size"] == 2
    # img2img: the init image is not echoed unless asked for.
    r = httpx.post(f"{fleet.url}/sdapi/v1/img2img", headers=headers, timeout=120,
                   json={**TXT2IMG, "init_images": [png_b64("blue")], "denoising_strength": 0.5})
    assert r.status_code == 200, r.text
    assert len(r.json()["images"]) == 1 and r.json()["parameters"]["init_images"] is None
    assert json.loads(r.json()["info"])["denoising_strength"] == 0.5


def test_progress_and_interrupt_stay_with_their_user(fleet):
    admin = fleet.login()
    alice, bob = _user(fleet, admin), _user(fleet, admin)
    fleet.start_worker("a")
    long = {**TXT2IMG, "steps": 400}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        mine = pool.submit(httpx.post, f"{fleet.url}/sdapi/v1/txt2img", json=long, headers=alice, timeout=180)
        deadline = time.monotonic() + 90
        while (p := httpx.get(f"{fleet.url}/sdapi/v1/progress", headers=alice).json())["state"]["sampling_step"] < 2:
            assert time.monotonic() < deadline, p
            time.sleep(0.1)
        assert 0 < p["progress"] < 1 and p["state"]["sampling_steps"] == 400 and p["textinfo"] == "Running"
        alice_job = p["state"]["job"]
        # Bob's job queues behind Alice's (one worker); his progress shows his job only.
        theirs = pool.submit(httpx.post, f"{fleet.url}/sdapi/v1/txt2img", json=long, headers=bob, timeout=180)
        deadline = time.monotonic() + 20
        while not (q := httpx.get(f"{fleet.url}/sdapi/v1/progress", headers=bob).json())["state"]["job"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert q["state"]["job"] != alice_job and q["progress"] == 0 and q["textinfo"] == "Queued"
        # Bob's interrupt stops Bob's job, not Alice's.
        r = httpx.post(f"{fleet.url}/sdapi/v1/interrupt", headers=bob)
        assert r.status_code == 200 and r.json()["job_id"] == q["state"]["job"]
        bob_answer = theirs.result(timeout=30)
        assert bob_answer.status_code == 200 and bob_answer.json()["images"] == []
        assert json.loads(bob_answer.json()["info"])["interrupted"] is True
        before = httpx.get(f"{fleet.url}/sdapi/v1/progress", headers=alice).json()
        assert before["state"]["job"] == alice_job and not before["state"]["interrupted"]
        # Skip refuses nothing here (one image): it stops Alice's job like interrupt.
        r = httpx.post(f"{fleet.url}/sdapi/v1/skip", headers=alice)
        assert r.status_code == 200 and r.json()["job_id"] == alice_job
        answer = mine.result(timeout=60)
    assert answer.status_code == 200 and json.loads(answer.json()["info"])["interrupted"] is True
    assert httpx.get(f"{fleet.url}/sdapi/v1/progress", headers=alice).json()["state"]["job"] == ""


def test_textual_inversion_by_name_reaches_the_worker(fleet, tmp_path):
    import torch

    from sdfleet.engine.tensor_file import save_safetensors

    admin = fleet.login()
    headers = _user(fleet, admin)
    fleet.start_worker("a")
    payload = {**TXT2IMG, "prompt": "a tinystyle cube", "batch_size": 1}

    def image() -> bytes:
        r = httpx.post(f"{fleet.url}/sdapi/v1/txt2img", headers=headers, json=payload, timeout=120)
        assert r.status_code == 200, r.text
        return base64.b64decode(r.json()["images"][0])

    literal = image()  # no embedding of that name yet: the name is plain text
    path = tmp_path / "tinystyle.safetensors"
    save_safetensors({"emb_params": torch.randn(3, 32, generator=torch.Generator().manual_seed(4))}, path,
                     metadata={})
    fleet.server.runtime.services.checkpoints.register_file(path, name="TinyStyle.safetensors",
                                                            model_type="embeddings")
    with_embedding = image()  # pinned with the job, downloaded by the worker, found by its tokens
    as_pixels = [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int) for png in (literal,
                                                                                                 with_embedding)]
    assert np.abs(as_pixels[0] - as_pixels[1]).max() > 2


def test_the_complete_default_request_with_a_style(fleet):
    """A client that sends every field of A1111's schema at its default gets an image; `styles` are applied."""
    from tests.fixtures.a1111_payloads import FAST, TXT2IMG_DEFAULTS

    admin = fleet.login()
    headers = _user(fleet, admin)
    bearer = {"Authorization": headers["Authorization"]}
    r = httpx.post(f"{fleet.url}/api/v1/styles", headers=bearer,
                   json={"name": "glossy", "prompt": "{prompt}, glossy", "negative_prompt": "matte"})
    assert r.status_code == 201, r.text
    fleet.start_worker("a")
    payload = {**TXT2IMG_DEFAULTS, **FAST, "prompt": "a cube", "negative_prompt": "blurry", "seed": 11,
               "styles": ["glossy"]}
    r = httpx.post(f"{fleet.url}/sdapi/v1/txt2img", headers=headers, json=payload, timeout=120)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert info["styles"] == ["glossy"] and info["all_seeds"] == [11]
    text = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]))).info["parameters"]
    assert text.startswith("a cube, glossy\nNegative prompt: blurry, matte\n")
    assert "Sampler: Euler," in text and "Steps: 3" in text  # sampler_index "Euler" is A1111's default
    r = httpx.post(f"{fleet.url}/sdapi/v1/txt2img", headers=headers, json={**payload, "styles": ["nope"]})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "styles"
    # hires fix with A1111's defaults (hr_scale 2, the "Latent" mode, the first pass's steps)
    r = httpx.post(f"{fleet.url}/sdapi/v1/txt2img", headers=headers, timeout=120,
                   json={**payload, "enable_hr": True, "denoising_strength": 0.5})
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    assert image.size == (128, 128)
    assert "Size: 64x64" in image.info["parameters"] and "Hires upscale: 2," in image.info["parameters"]


def test_extras_upscale_single_and_batch(fleet):
    admin = fleet.login()
    headers = _user(fleet, admin)
    fleet.start_worker("a")
    r = httpx.post(f"{fleet.url}/sdapi/v1/extra-single-image", headers=headers, timeout=120,
                   json={"image": png_b64("red", size=(40, 24)), "upscaler_1": "Lanczos", "upscaling_resize": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["html_info"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
    image = Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB")
    assert image.size == (80, 48) and image.getpixel((40, 24)) == (255, 0, 0)
    images = [{"data": png_b64("blue", size=(16, 16)), "name": "a.png"},
              {"data": png_b64("green", size=(32, 8)), "name": "b.png"}]
    r = httpx.post(f"{fleet.url}/sdapi/v1/extra-batch-images", headers=headers, timeout=120,
                   json={"imageList": images, "upscaler_1": "Nearest", "upscaling_resize": 3})
    assert r.status_code == 200, r.text
    sizes = [Image.open(io.BytesIO(base64.b64decode(b))).size for b in r.json()["images"]]
    assert sizes == [(48, 48), (96, 24)]  # A1111 rounds the target down to a multiple of 8
    r = httpx.post(f"{fleet.url}/sdapi/v1/extra-single-image", headers=headers,
                   json={"image": png_b64("red"), "upscaler_1": "Lanczos", "gfpgan_visibility": 0.5})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "gfpgan_visibility"
    r = httpx.post(f"{fleet.url}/sdapi/v1/extra-batch-images", headers=headers,
                   json={"imageList": [{"data": "bm90IGFuIGltYWdl", "name": "x"}], "upscaler_1": "Lanczos"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "imageList[0].data"
