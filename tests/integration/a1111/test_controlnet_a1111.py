"""A1111's ControlNet extension surface: /controlnet/* lists, unit refusals, and a unit on the fleet against diffusers."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.integration.a1111.a1111_client import png_b64, with_demo

CN_NAME = "control_v11p_sd15_tiny.safetensors"
TOLERANCE = 2  # out of 255, as the engine-vs-diffusers tests


def _controlnet_file(tmp_path: Path) -> tuple[Path, object, object]:
    """A random SD 1.5-architecture ControlNet sized to demo-sd15 (whose pipeline it returns), in the LDM layout."""
    from sdfleet.engine.controlnet_files import write_ldm_controlnet
    from sdfleet.engine.demo import DEMO_SEED
    from sdfleet.engine.tiny import tiny_controlnet, tiny_sd1_pipeline

    sd1 = tiny_sd1_pipeline(seed=DEMO_SEED)
    controlnet = tiny_controlnet(sd1.unet, seed=0)
    return write_ldm_controlnet(controlnet, tmp_path / CN_NAME), sd1, controlnet


def _hint() -> str:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _unit(**extra) -> dict:
    return {"enabled": True, "module": "none", "model": "control_v11p_sd15_tiny", "image": _hint(), **extra}


@pytest.fixture
def cn_api(api, demo_files, tmp_path):
    with_demo(api, demo_files)
    path, _, _ = _controlnet_file(tmp_path)
    api.runtime.services.checkpoints.register_file(path, name=CN_NAME, model_type="ControlNet")
    return api


def test_controlnet_routes_answer_in_the_extension_shapes(cn_api):
    api = cn_api
    headers = api.make_user(roles=["artist"])["headers"]
    assert api.client.get("/controlnet/version", headers=headers).json() == {"version": 2}
    models = api.client.get("/controlnet/model_list", headers=headers).json()["model_list"]
    assert len(models) == 1 and models[0].startswith("control_v11p_sd15_tiny [")
    assert api.client.get("/controlnet/model_list?update=false", headers=headers).json()["model_list"] == models
    modules = api.client.get("/controlnet/module_list", headers=headers).json()
    assert modules == {"module_list": ["none"], "module_detail": {"none": {"model_free": False, "sliders": []}}}
    for path in ("version", "model_list", "module_list"):
        assert api.client.get(f"/controlnet/{path}").status_code == 401


@pytest.mark.parametrize(("unit", "field"), [
    ({"module": "canny"}, "module"),
    ({"control_mode": 7}, "control_mode"),
    ({"resize_mode": 5}, "resize_mode"),
    ({"model": "control_v11p_sd15_missing [00000000]"}, "model"),
    ({"image": None}, "image"),
    ({"image": "bm90IGFuIGltYWdl"}, "image"),
    ({"image": None, "input_image": "bm90IGFuIGltYWdl"}, "input_image"),
])
def test_refused_units_are_422_naming_the_field(cn_api, unit, field):
    api = cn_api
    headers = api.make_user(roles=["artist"])["headers"]
    body = {"prompt": "x", "steps": 2, "alwayson_scripts": {"controlnet": {"args": [_unit(**unit)]}}}
    r = api.client.post("/sdapi/v1/txt2img", headers=headers, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == f"alwayson_scripts.controlnet.args[0].{field}", r.json()


def test_unit_images_are_admitted_under_the_pixel_limit(tmp_path, demo_files):
    from fastapi.testclient import TestClient

    from sdfleet.bootstrap import build_app
    from tests.fixtures.runtime import Api, make_runtime

    runtime = make_runtime(tmp_path, max_image_pixels=64 * 64)
    with TestClient(build_app(runtime, local_workers=0)) as client:
        api = with_demo(Api(client=client, runtime=runtime), demo_files)
        headers = api.make_user(roles=["artist"])["headers"]
        body = {"prompt": "x", "steps": 2, "alwayson_scripts": {"controlnet": {"args": [
            {"enabled": False}, {"model": "m", "input_image": png_b64(size=(96, 64))}]}}}
        r = client.post("/sdapi/v1/txt2img", headers=headers, json=body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["details"]["field"] == "alwayson_scripts.controlnet.args[1].input_image"
        assert (error["details"]["max_pixels"], error["details"]["width"]) == (64 * 64, 96), error


def test_a_unit_through_txt2img_matches_the_controlnet_pipeline(fleet, tmp_path):
    """The A1111 client's request with a ControlNet unit, on a real worker, equals diffusers' ControlNet pipeline."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionControlNetPipeline

    path, sd1, controlnet = _controlnet_file(tmp_path)
    fleet.server.runtime.services.checkpoints.register_file(path, name=CN_NAME, model_type="ControlNet")
    admin = fleet.login()
    fleet.start_worker("a")
    title = httpx.get(f"{fleet.url}/controlnet/model_list", headers=admin).json()["model_list"][0]
    body = {"prompt": "a red cat", "negative_prompt": "blurry", "steps": 5, "cfg_scale": 6.5, "width": 64,
            "height": 64, "seed": 7, "sampler_name": "Euler",
            "override_settings": {"sd_model_checkpoint": "demo-sd15.safetensors"},
            "alwayson_scripts": {"controlnet": {"args": [
                _unit(model=title, weight=0.8, input_image=_hint(), image=None, pixel_perfect=True,
                      processor_res=512, threshold_a=64, threshold_b=64, guidance_start=0.0, guidance_end=1.0,
                      control_mode="Balanced", resize_mode="Crop and Resize", low_vram=False),
                {"enabled": False, "module": "none", "model": "None"}]}}}
    r = httpx.post(f"{fleet.url}/sdapi/v1/txt2img", headers=admin, json=body, timeout=300)
    assert r.status_code == 200, r.text
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]))).convert("RGB")).astype(int)
    info = json.loads(r.json()["info"])
    assert info["seed"] == 7

    pipe = StableDiffusionControlNetPipeline(
        vae=sd1.vae, text_encoder=sd1.text_encoder, tokenizer=sd1.tokenizer, unet=sd1.unet, controlnet=controlnet,
        scheduler=EulerDiscreteScheduler.from_config(sd1.scheduler.config, timestep_spacing="linspace"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    hint = Image.open(io.BytesIO(base64.b64decode(_hint())))
    expected = pipe("a red cat", image=hint, negative_prompt="blurry", num_inference_steps=5, guidance_scale=6.5,
                    controlnet_conditioning_scale=0.8, height=64, width=64,
                    generator=torch.Generator("cpu").manual_seed(7), output_type="np").images[0]
    expected = (expected * 255).round().astype(int)
    assert np.abs(got - expected).max() <= TOLERANCE
    # the same request without the unit gives another image, so the comparison can fail
    plain = {k: v for k, v in body.items() if k != "alwayson_scripts"}
    r = httpx.post(f"{fleet.url}/sdapi/v1/txt2img", headers=admin, json=plain, timeout=300)
    assert r.status_code == 200, r.text
    other = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]))).convert("RGB")).astype(int)
    assert np.abs(other - expected).max() > 10
