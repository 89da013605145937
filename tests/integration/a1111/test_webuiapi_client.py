"""An unchanged A1111 client library (`webuiapi` 0.9.17, pinned in the dev extra) against a live server and a real
worker: its txt2img/img2img/inpainting defaults, progress, options, model lists, hires fix and a ControlNet unit
(`webuiapi.ControlNetUnit` with its defaults, sent as `alwayson_scripts.ControlNet`)."""

from __future__ import annotations

import base64
import concurrent.futures
import time

import numpy as np
import webuiapi
from PIL import Image

from tests.integration.a1111.test_generation_e2e import _user

FAST = {"width": 64, "height": 64, "steps": 3}


def _client(fleet) -> webuiapi.WebUIApi:
    """webuiapi as its README shows it, with HTTP Basic auth (an sdfleet username and API key)."""
    headers = _user(fleet, fleet.login())
    username, _, key = base64.b64decode(headers["Authorization"].split()[1]).decode().partition(":")
    return webuiapi.WebUIApi(host="127.0.0.1", port=fleet.server.port, username=username, password=key)


def _params(result: webuiapi.WebUIApiResult) -> str:
    return result.image.info["parameters"]


def test_webuiapi_lists_options_txt2img_img2img_and_hires(fleet):
    api = _client(fleet)
    assert api.has_controlnet is False  # its start-up probe (/sdapi/v1/scripts) answered A1111's shape
    # model lists
    titles = api.util_get_model_names()
    sd15 = next(t for t in titles if t.startswith("demo-sd15"))
    assert {"Euler a", "Euler", "DPM++ 2M"} <= set(api.util_get_sampler_names())
    assert "Automatic" in [s["label"] for s in api.get_schedulers()]
    upscalers = [u["name"] for u in api.get_upscalers()]
    assert {"None", "Lanczos", "Nearest"} <= set(upscalers)
    # options: set the checkpoint the way webuiapi's util_set_model does, read it back
    api.util_set_model("demo-sd15")
    assert api.get_options()["sd_model_checkpoint"] == sd15 and api.util_get_current_model() == sd15
    fleet.start_worker("a")

    # txt2img with webuiapi's defaults ("Euler a", scheduler "automatic", eta 1, every hr_* default…)
    result = api.txt2img(prompt="a red cube", seed=42, **FAST)
    assert result.image.size == (64, 64)
    assert result.info["seed"] == 42 and result.info["all_seeds"] == [42]
    assert result.info["sd_model_name"] == "demo-sd15"
    text = _params(result)
    assert text.startswith("a red cube\n") and "Sampler: Euler a" in text and "Steps: 3" in text
    assert "Seed: 42" in text and "Size: 64x64" in text and "Model: demo-sd15" in text
    assert result.parameters["sampler_name"] == "Euler a"

    # a batch: image i has the seed seed + i
    batch = api.txt2img(prompt="a red cube", seed=7, batch_size=2, **FAST)
    assert len(batch.images) == 2 and batch.info["all_seeds"] == [7, 8]
    assert "Seed: 8" in batch.images[1].info["parameters"]

    # img2img of the txt2img image (webuiapi sends it as a data: URL)
    again = api.img2img(images=[result.image], prompt="a blue cube", seed=3, denoising_strength=0.5, **FAST)
    assert again.image.size == (64, 64) and again.info["seed"] == 3
    assert "Denoising strength: 0.5" in _params(again)
    assert np.abs(np.asarray(again.image, dtype=int) - np.asarray(result.image.convert("RGB"), dtype=int)).mean() > 1

    # hires fix: webuiapi's defaults (hr_scale 2, the "Latent" upscaler, denoising 0.7, the first pass's steps)
    hires = api.txt2img(prompt="a red cube", seed=5, enable_hr=True, **FAST)
    assert hires.image.size == (128, 128)
    text = _params(hires)
    assert "Size: 64x64" in text and "Hires upscale: 2" in text and "Hires upscaler: Latent" in text
    assert "Denoising strength: 0.7" in text


def test_webuiapi_inpainting_with_its_defaults_paints_only_the_masked_area(fleet):
    """webuiapi's img2img(mask_image=...) sends inpaint_full_res=True ("Only masked"), padding 0, mask_blur 4."""
    api = _client(fleet)
    fleet.start_worker("a")
    rng = np.random.default_rng(4)
    original = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    mask = np.zeros((96, 128), dtype=np.uint8)
    mask[40:56, 90:106] = 255
    result = api.img2img(images=[Image.fromarray(original)], mask_image=Image.fromarray(mask), prompt="a cat",
                         seed=11, **FAST)
    # "Only masked" answers at the original's size: the masked area was sampled at 64 × 64 and pasted back
    assert result.image.size == (128, 96) and result.info["seed"] == 11
    text = _params(result)
    assert "Inpaint area: Only masked" in text and "Masked area padding: 0" in text and "Size: 64x64" in text
    assert "Mask blur: 4" in text and "Masked content: fill" in text
    got = np.asarray(result.image.convert("RGB"), dtype=int)
    # mask_blur 4 spreads the mask by at most 2 × int(2.5 × 4 + 0.5) / 2 = 10 px; the 16 + 20 px square box
    # around it (grown to 1:1) is all that may change
    changed = np.argwhere(np.abs(got - original).max(axis=2) > 0)
    assert changed.size and changed[:, 0].min() >= 30 and changed[:, 0].max() < 66
    assert changed[:, 1].min() >= 80 and changed[:, 1].max() < 116
    assert np.abs(got[40:56, 90:106] - original[40:56, 90:106]).mean() > 10  # the masked square was repainted
    # the same strokes as black on a transparent layer (A1111 reads the alpha of an RGBA mask): the same image
    layer = np.zeros((96, 128, 4), dtype=np.uint8)
    layer[40:56, 90:106, 3] = 255
    same = api.img2img(images=[Image.fromarray(original)], mask_image=Image.fromarray(layer, "RGBA"),
                       prompt="a cat", seed=11, **FAST)
    assert np.array_equal(np.asarray(same.image.convert("RGB"), dtype=int), got)
    # a blank mask: A1111 gives up "Only masked" and runs img2img on the whole picture, at width × height
    blank = api.img2img(images=[Image.fromarray(original)], mask_image=Image.new("L", (128, 96)), prompt="a cat",
                        seed=12, **FAST)
    assert blank.image.size == (64, 64) and "Inpaint area" not in _params(blank)


def test_webuiapi_progress_while_a_job_runs(fleet):
    api = _client(fleet)
    fleet.start_worker("a")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(api.txt2img, prompt="a slow cube", seed=1, width=64, height=64, steps=300)
        deadline = time.monotonic() + 180
        while (p := api.get_progress())["state"]["sampling_step"] < 2:
            assert time.monotonic() < deadline, p
            assert not running.done(), running.result()
            time.sleep(0.1)
        assert 0 < p["progress"] < 1 and p["state"]["sampling_steps"] == 300 and p["state"]["job_count"] == 1
        assert p["textinfo"] == "Running" and p["eta_relative"] >= 0
        assert api.interrupt() is not None
        stopped = running.result(timeout=120)
    assert stopped.images == [] or stopped.image.size == (64, 64)
    idle = api.get_progress()
    assert idle["progress"] == 0 and idle["state"]["job"] == "" and idle["state"]["sampling_steps"] == 0


def test_webuiapi_controlnet_unit_with_its_defaults(fleet, tmp_path):
    from tests.integration.a1111.test_controlnet_a1111 import CN_NAME, _controlnet_file

    path, _, _ = _controlnet_file(tmp_path)
    fleet.server.runtime.services.checkpoints.register_file(path, name=CN_NAME, model_type="ControlNet")
    api = _client(fleet)
    assert api.controlnet_version() == 2 and api.controlnet_module_list() == ["none"]
    [title] = api.controlnet_model_list()
    assert title.startswith("control_v11p_sd15_tiny [")
    fleet.start_worker("a")
    rng = np.random.default_rng(1)
    hint = Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8))  # another aspect: "Resize and Fill"
    # webuiapi's unit defaults: resize_mode "Resize and Fill", control_mode 0 → "Balanced", hr_option "Both",
    # processor_res 512, threshold_a/b 64, mask None
    unit = webuiapi.ControlNetUnit(image=hint, module="none", model=title, weight=1.0)
    # webuiapi writes the units into its `alwayson_scripts={}` default argument, which Python keeps between
    # calls: each call passes its own dict so a later call does not send the unit again
    controlled = api.txt2img(prompt="a red cube", seed=11, controlnet_units=[unit], alwayson_scripts={}, **FAST)
    plain = api.txt2img(prompt="a red cube", seed=11, alwayson_scripts={}, **FAST)
    assert controlled.image.size == plain.image.size == (64, 64)
    difference = np.abs(np.asarray(controlled.image, dtype=int) - np.asarray(plain.image, dtype=int)).max()
    assert difference > 10  # the unit steered the image
    again = api.txt2img(prompt="a red cube", seed=11, controlnet_units=[unit], alwayson_scripts={}, **FAST)
    assert np.array_equal(np.asarray(again.image), np.asarray(controlled.image))  # and reproducibly
