"""The A1111 list routes, png-info, memory and per-user options, over HTTP (TestClient, no workers)."""

from __future__ import annotations

import pytest

from tests.integration.a1111.a1111_client import basic, new_key, png_b64, with_demo


@pytest.fixture
def demo_api(api, demo_files):
    return with_demo(api, demo_files)


def _artist(api):
    user = api.make_user(roles=["artist"])
    return user["username"], user["headers"]


def test_sd_models_titles_with_basic_auth(demo_api):
    api = demo_api
    name, bearer = _artist(api)
    headers = basic(name, new_key(api.client, bearer))
    r = api.client.get("/sdapi/v1/sd-models", headers=headers)
    assert r.status_code == 200, r.text
    models = {m["model_name"]: m for m in r.json()}
    assert set(models) == {"demo-sd15", "demo-sdxl"}
    sd15 = models["demo-sd15"]
    assert sd15["hash"] == sd15["sha256"][:10]
    assert sd15["title"] == f"demo-sd15.safetensors [{sd15['hash']}]"
    loras = api.client.get("/sdapi/v1/loras", headers=headers).json()
    assert [lo["name"] for lo in loras] == ["demo-lora"]
    assert api.client.get("/sdapi/v1/sd-vae", headers=headers).json() == []


def test_basic_auth_refuses_a_wrong_username_or_key(demo_api):
    api = demo_api
    name, bearer = _artist(api)
    key = new_key(api.client, bearer)
    assert api.client.get("/sdapi/v1/sd-models", headers=basic("someone-else", key)).status_code == 401
    assert api.client.get("/sdapi/v1/sd-models", headers=basic(name, key + "x")).status_code == 401
    assert api.client.get("/sdapi/v1/sd-models").status_code == 401


def test_samplers_schedulers_upscalers_embeddings_memory(demo_api):
    api = demo_api
    _, headers = _artist(api)
    samplers = {s["name"]: s for s in api.client.get("/sdapi/v1/samplers", headers=headers).json()}
    assert {"Euler a", "Euler", "DPM++ 2M", "DDIM"} <= set(samplers)
    assert "k_euler_a" in samplers["Euler a"]["aliases"]
    schedulers = [s["label"] for s in api.client.get("/sdapi/v1/schedulers", headers=headers).json()]
    assert schedulers[0] == "Automatic" and "Karras" in schedulers
    assert api.client.get("/sdapi/v1/upscalers", headers=headers).json()[0]["name"] == "None"
    assert api.client.get("/sdapi/v1/embeddings", headers=headers).json() == {"loaded": {}, "skipped": {}}
    memory = api.client.get("/sdapi/v1/memory", headers=headers).json()
    assert memory["ram"]["total"] > 0 and memory["cuda"]["system"] == {"free": 0, "used": 0, "total": 0}
    assert memory["workers"] == []
    assert api.client.post("/sdapi/v1/refresh-checkpoints", headers=headers).status_code == 200


def test_options_are_per_user_and_validated(demo_api):
    api = demo_api
    _, alice = _artist(api)
    _, bob = _artist(api)
    models = {m["model_name"]: m["title"] for m in api.client.get("/sdapi/v1/sd-models", headers=alice).json()}
    # Nobody chose yet: the first visible model is what a task would use.
    assert api.client.get("/sdapi/v1/options", headers=alice).json()["sd_model_checkpoint"] == models["demo-sd15"]
    r = api.client.post("/sdapi/v1/options", headers=alice,
                        json={"sd_model_checkpoint": models["demo-sdxl"], "CLIP_stop_at_last_layers": 2})
    assert r.status_code == 200, r.text
    mine = api.client.get("/sdapi/v1/options", headers=alice).json()
    assert mine["sd_model_checkpoint"] == models["demo-sdxl"] and mine["CLIP_stop_at_last_layers"] == 2
    theirs = api.client.get("/sdapi/v1/options", headers=bob).json()
    assert theirs["sd_model_checkpoint"] == models["demo-sd15"] and theirs["CLIP_stop_at_last_layers"] == 1
    # A bare name or stem designates the same model; unknown models and options are refused by name.
    r = api.client.post("/sdapi/v1/options", headers=bob, json={"sd_model_checkpoint": "demo-sdxl"})
    assert r.json()["sd_model_checkpoint"] == models["demo-sdxl"]
    r = api.client.post("/sdapi/v1/options", headers=bob, json={"sd_model_checkpoint": "nope.safetensors"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "sd_model_checkpoint"
    r = api.client.post("/sdapi/v1/options", headers=bob, json={"samples_save": False, "sd_vae": "Automatic"})
    assert r.status_code == 422 and "samples_save" in r.json()["error"]["message"]
    r = api.client.post("/sdapi/v1/options", headers=bob, json={"CLIP_stop_at_last_layers": 40})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "CLIP_stop_at_last_layers"


def test_png_info_parses_infotext(demo_api):
    api = demo_api
    _, headers = _artist(api)
    text = ("a red cube\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, Schedule type: Automatic, "
            "CFG scale: 7, Seed: 42, Size: 64x48, Model hash: 0123456789, Model: demo-sd15")
    r = api.client.post("/sdapi/v1/png-info", headers=headers,
                        json={"image": png_b64(text={"parameters": text, "prompt": "{}"})})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["info"] == text and body["items"] == {"prompt": "{}"}
    params = body["parameters"]
    assert params["Prompt"] == "a red cube" and params["Negative prompt"] == "blurry"
    assert params["Seed"] == "42" and params["Size-1"] == "64" and params["Size-2"] == "48"
    r = api.client.post("/sdapi/v1/png-info", headers=headers, json={"image": "bm90IGFuIGltYWdl"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "image"


def test_unsupported_fields_are_422_naming_them(demo_api):
    api = demo_api
    _, headers = _artist(api)
    cases = [
        ({"script_name": "x/y/z plot"}, "script_name"),
        ({"alwayson_scripts": {"ADetailer": {"args": [{"enabled": True}]}}}, "alwayson_scripts"),
        ({"enable_hr": True, "hr_upscaler": "ESRGAN_4x"}, "hr_upscaler"),
        ({"restore_faces": True}, "restore_faces"),
        ({"sampler_name": "Nope"}, "sampler_name"),
        ({"override_settings": {"sd_model_checkpoint": "missing.safetensors"}}, "graph"),
        ({"made_up_field": 1}, "made_up_field"),
    ]
    for extra, field in cases:
        r = api.client.post("/sdapi/v1/txt2img", headers=headers, json={"prompt": "x", "steps": 2, **extra})
        assert r.status_code == 422, (extra, r.text)
        assert r.json()["error"]["details"]["field"] == field, (extra, r.json())
    r = api.client.post("/sdapi/v1/txt2img", headers=headers, json={"alwayson_scripts": {"controlnet": {"args": [1]}}})
    assert "controlnet" in r.json()["error"]["message"]
    r = api.client.post("/sdapi/v1/img2img", headers=headers, json={"prompt": "x", "init_images": []})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "init_images"


def test_a1111_routes_need_inference_permission(demo_api):
    api = demo_api
    nobody = api.make_user(roles=[])["headers"]
    assert api.client.post("/sdapi/v1/txt2img", headers=nobody, json={"prompt": "x"}).status_code == 403
    assert api.client.get("/sdapi/v1/progress", headers=nobody).status_code == 403
    assert api.client.post("/sdapi/v1/interrupt", headers=nobody).status_code == 403


def test_default_checkpoint_option_applies_to_native_tasks_of_that_user_only(demo_api):
    api = demo_api
    _, alice = _artist(api)
    _, bob = _artist(api)
    r = api.client.post("/sdapi/v1/options", headers=alice, json={"sd_model_checkpoint": "demo-sdxl.safetensors"})
    assert r.status_code == 200, r.text
    task = {"task": "txt2img", "params": {"prompt": "x", "steps": 2, "width": 64, "height": 64}}
    mine = api.client.post("/api/v1/inferences", headers=alice, json=task).json()["id"]
    theirs = api.client.post("/api/v1/inferences", headers=bob, json=task).json()["id"]
    assert api.client.get(f"/api/v1/inferences/{mine}", headers=alice).json()["model"] == "demo-sdxl.safetensors"
    assert api.client.get(f"/api/v1/inferences/{theirs}", headers=bob).json()["model"] == "demo-sd15.safetensors"
    # An explicit override still wins over the user's default.
    explicit = {**task, "params": {**task["params"],
                                   "override_settings": {"sd_model_checkpoint": "demo-sd15.safetensors"}}}
    job = api.client.post("/api/v1/inferences", headers=alice, json=explicit).json()["id"]
    assert api.client.get(f"/api/v1/inferences/{job}", headers=alice).json()["model"] == "demo-sd15.safetensors"


def test_skip_refuses_a_multi_image_job_and_interrupt_stops_it(demo_api):
    api = demo_api
    _, alice = _artist(api)
    task = {"task": "txt2img", "params": {"prompt": "x", "steps": 2, "width": 64, "height": 64, "batch_size": 2}}
    job = api.client.post("/api/v1/inferences", headers=alice, json=task).json()["id"]
    progress = api.client.get("/sdapi/v1/progress", headers=alice).json()
    assert progress["state"]["job"] == job and progress["textinfo"] == "Queued" and progress["current_image"] is None
    r = api.client.post("/sdapi/v1/skip", headers=alice)
    assert r.status_code == 409 and "interrupt" in r.json()["error"]["message"]
    assert api.client.post("/sdapi/v1/interrupt", headers=alice).json() == {"job_id": job}
    assert api.client.get(f"/api/v1/inferences/{job}", headers=alice).json()["status"] == "cancelled"
    assert api.client.post("/sdapi/v1/interrupt", headers=alice).json() == {"job_id": None}
    assert api.client.get("/sdapi/v1/progress", headers=alice).json()["state"]["job"] == ""


def test_start_up_routes_answer_in_a1111_shapes(demo_api, tmp_path):
    api = demo_api
    _, headers = _artist(api)
    get = lambda path: api.client.get(f"/sdapi/v1/{path}", headers=headers)  # noqa: E731
    assert get("scripts").json() == {"txt2img": [], "img2img": []}
    assert get("script-info").json() == []
    flags = get("cmd-flags").json()
    assert flags["api"] is True and flags["medvram"] is False and "ckpt_dir" in flags
    assert get("face-restorers").json() == [] and get("hypernetworks").json() == []
    assert get("extensions").json() == []
    assert get("realesrgan-models").json() == []
    assert get("sd-modules").status_code == 404  # Forge's route, not A1111's
    assert [m["name"] for m in get("latent-upscale-modes").json()][:2] == ["Latent", "Latent (antialiased)"]
    assert [u["name"] for u in get("upscalers").json()] == ["None", "Lanczos", "Nearest"]
    for path in ("scripts", "cmd-flags", "face-restorers", "realesrgan-models", "hypernetworks", "extensions"):
        assert api.client.get(f"/sdapi/v1/{path}").status_code == 401


def test_registered_upscaler_models_are_listed_and_named_in_hires(demo_api, tmp_path):
    import torch

    from sdfleet.engine.tensor_file import save_safetensors
    from sdfleet.engine.upscale_models import _spandrel

    _spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    api = demo_api
    _, headers = _artist(api)
    torch.manual_seed(0)
    state = ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict()
    path = save_safetensors({k: v.contiguous() for k, v in state.items()}, tmp_path / "tiny.safetensors",
                            metadata={})
    api.runtime.services.checkpoints.register_file(path, name="4x-tiny.safetensors", model_type="upscaler")
    names = [u["name"] for u in api.client.get("/sdapi/v1/upscalers", headers=headers).json()]
    assert names == ["None", "Lanczos", "Nearest", "4x-tiny"]
    assert api.client.get("/sdapi/v1/realesrgan-models", headers=headers).json() == [
        {"name": "4x-tiny", "path": "4x-tiny.safetensors", "scale": None}]
    r = api.client.post("/sdapi/v1/txt2img", headers=headers,
                        json={"prompt": "x", "steps": 2, "enable_hr": True, "hr_upscaler": "4x-nope"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "hr_upscaler"
    assert "4x-tiny" in r.json()["error"]["message"]
