"""A1111's complete default request compiles; each field varied is honoured or refused by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sdfleet.engine.a1111 import UnsupportedField, compile_a1111
from sdfleet.engine.a1111_fields import HONOURED, IGNORED, NEUTRAL
from sdfleet.engine.executor import Engine
from tests.fixtures.a1111_payloads import FAST, IMG2IMG_DEFAULTS, TXT2IMG_DEFAULTS

REFUSED = "refused"
Check = Callable[[dict[str, Any]], bool] | str


def _compile(task: str, payload: dict[str, Any], *, mask: bool = False):
    return compile_a1111(task, payload, default_checkpoint="sd1.safetensors",
                         input_images=["init.png"] if task == "img2img" else [],
                         mask_image="mask.png" if mask else None, lora_names=["style.safetensors"])


def _sampler(graph: dict) -> dict:
    return graph["sample0"]["inputs"]


@pytest.mark.parametrize(("task", "defaults"), [("txt2img", TXT2IMG_DEFAULTS), ("img2img", IMG2IMG_DEFAULTS)])
def test_the_complete_default_request_compiles_as_a1111_reads_it(task, defaults) -> None:
    payload = {**defaults, "init_images": ["base64"]} if task == "img2img" else dict(defaults)
    compiled = _compile(task, payload)
    Engine().validate(compiled.graph)
    sample = _sampler(compiled.graph)
    # sampler_index "Euler" is A1111's default sampler; 50 steps, CFG 7, 512², one image
    assert (sample["sampler_name"], sample["scheduler"], sample["steps"], sample["cfg"]) == ("euler", "uniform",
                                                                                             50, 7.0)
    assert (sample["eta"], sample["s_churn"], sample["s_noise"], sample["subseed_strength"]) == (1.0, 0.0, 1.0, 0.0)
    assert "noise_multiplier" not in sample and "sample1" not in compiled.graph
    assert sample["denoise"] == (0.75 if task == "img2img" else 1.0)


def test_every_default_field_is_classified() -> None:
    known = HONOURED | IGNORED | set(NEUTRAL) | {"inpaint_full_res", "inpaint_full_res_padding", "mask_blur_x",
                                                  "mask_blur_y",
                                                  "refiner_switch_at", "alwayson_scripts"}
    assert set(TXT2IMG_DEFAULTS) | set(IMG2IMG_DEFAULTS) <= known


INFOTEXT = "a dog\nNegative prompt: cat\nSteps: 9, Sampler: DDIM, CFG scale: 4, Seed: 3, Size: 128x64, Clip skip: 2"

# (field, varied value, what the graph shows, or REFUSED: a 422 naming the field)
TXT2IMG_VARIED: list[tuple[str, Any, Check]] = [
    ("prompt", "a cat", lambda g: g["prompt"]["inputs"]["prompt"] == "a cat"),
    ("negative_prompt", "dog", lambda g: g["prompt"]["inputs"]["negative_prompt"] == "dog"),
    ("styles", ["x"], REFUSED),  # applied by the A1111 service before compiling
    ("seed", 5, lambda g: _sampler(g)["seed"] == 5),
    ("subseed", 7, lambda g: _sampler(g)["subseed"] == 7),
    ("subseed_strength", 0.5, lambda g: _sampler(g)["subseed_strength"] == 0.5),
    ("seed_resize_from_h", 256, lambda g: _sampler(g)["seed_resize_from_h"] == 256),
    ("seed_resize_from_w", 256, lambda g: _sampler(g)["seed_resize_from_w"] == 256),
    ("sampler_name", "DPM++ 2M", lambda g: _sampler(g)["sampler_name"] == "dpmpp_2m"),
    ("scheduler", "Karras", lambda g: _sampler(g)["scheduler"] == "karras"),
    ("batch_size", 2, lambda g: 2 in (g["latent"]["inputs"].get("batch_size"), g["latent"]["inputs"].get("amount"))),
    ("n_iter", 2, lambda g: "sample1" in g),
    ("steps", 7, lambda g: _sampler(g)["steps"] == 7),
    ("cfg_scale", 3.5, lambda g: _sampler(g)["cfg"] == 3.5),
    ("width", 128, lambda g: g["latent"]["inputs"]["width"] == 128),
    ("height", 128, lambda g: g["latent"]["inputs"]["height"] == 128),
    ("restore_faces", True, REFUSED),
    ("tiling", True, REFUSED),
    ("do_not_save_samples", True, lambda g: True),
    ("do_not_save_grid", True, lambda g: True),
    ("eta", 0.5, lambda g: _sampler(g)["eta"] == 0.5),
    ("denoising_strength", 0.3, lambda g: _sampler(g)["denoise"] == 1.0),  # a hires-fix field
    ("s_min_uncond", 0.5, REFUSED),
    ("s_churn", 0.5, lambda g: _sampler(g)["s_churn"] == 0.5),
    ("s_tmax", 5.0, lambda g: _sampler(g)["s_tmax"] == 5.0),
    ("s_tmin", 0.1, lambda g: _sampler(g)["s_tmin"] == 0.1),
    ("s_noise", 0.9, lambda g: _sampler(g)["s_noise"] == 0.9),
    ("override_settings", {"CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 0},
     lambda g: g["clipskip"]["inputs"]["stop_at_clip_layer"] == -2),
    ("override_settings", {"eta_noise_seed_delta": 31337}, "override_settings.eta_noise_seed_delta"),
    ("override_settings_restore_afterwards", False, lambda g: True),
    ("refiner_checkpoint", "refiner.safetensors", REFUSED),
    ("refiner_switch_at", 0.8, lambda g: True),  # no refiner checkpoint: A1111 ignores it
    ("disable_extra_networks", True, lambda g: "lora0" not in g),
    ("firstpass_image", "base64", lambda g: True),  # read by hires fix only
    ("comments", {"note": 1}, lambda g: True),
    ("enable_hr", True, lambda g: g["hr_sample0"]["inputs"]["latent_image"] == ["hr_upscale0", 0]),
    ("firstphase_width", 256, REFUSED),
    ("firstphase_height", 256, REFUSED),
    ("hr_scale", 1.5, lambda g: "sample0" in g),  # hires fields do nothing without enable_hr
    ("hr_upscaler", "Latent", lambda g: True),
    ("hr_second_pass_steps", 5, lambda g: True),
    ("hr_resize_x", 256, lambda g: True),
    ("hr_resize_y", 256, lambda g: True),
    ("hr_checkpoint_name", "other.safetensors", lambda g: True),
    ("hr_sampler_name", "DDIM", lambda g: True),
    ("hr_scheduler", "Karras", lambda g: True),
    ("hr_prompt", "hires", lambda g: True),
    ("hr_negative_prompt", "hires", lambda g: True),
    ("force_task_id", "task-1", lambda g: True),
    ("sampler_index", "DDIM", lambda g: _sampler(g)["sampler_name"] == "ddim"),
    ("script_name", "x/y/z plot", REFUSED),
    ("script_args", [1, 2], lambda g: True),  # A1111 reads them only for script_name
    ("send_images", False, lambda g: True),
    ("save_images", True, lambda g: True),
    ("alwayson_scripts", {"controlnet": {"args": []}}, lambda g: True),  # no arguments: nothing to run
    ("alwayson_scripts", {"ADetailer": {"args": [True]}}, REFUSED),
    ("infotext", INFOTEXT, lambda g: (g["prompt"]["inputs"]["prompt"], g["prompt"]["inputs"]["negative_prompt"],
                                      _sampler(g)["steps"], _sampler(g)["sampler_name"], _sampler(g)["seed"],
                                      g["latent"]["inputs"]["width"], g["clipskip"]["inputs"]["stop_at_clip_layer"])
     == ("a dog", "cat", 9, "ddim", 3, 128, -2)),
]

IMG2IMG_VARIED: list[tuple[str, Any, Check]] = [
    ("resize_mode", 1, lambda g: g["resized"]["inputs"]["crop"] == "center"),
    ("resize_mode", 2, REFUSED),
    ("image_cfg_scale", 1.5, lambda g: True),  # instruct-pix2pix checkpoints only, as in A1111
    ("mask_round", False, REFUSED),
    ("inpaint_full_res_padding", 32, lambda g: True),
    ("initial_noise_multiplier", 0.9, lambda g: _sampler(g)["noise_multiplier"] == 0.9),
    ("latent_mask", "base64", REFUSED),
    ("include_init_images", True, lambda g: True),
    ("denoising_strength", 0.3, lambda g: _sampler(g)["denoise"] == 0.3),
    ("inpaint_full_res", False, lambda g: True),
]

# inpainting fields, with a mask
MASK_VARIED: list[tuple[str, Any, Check]] = [
    ("inpainting_fill", 1, lambda g: g["latent"]["class_type"] == "SetLatentNoiseMask"),
    ("inpainting_fill", 2, lambda g: g["filled"]["inputs"]["fill"] == "latent noise"),
    ("inpainting_fill", 3, lambda g: g["filled"]["inputs"]["fill"] == "latent nothing"),
    ("inpainting_mask_invert", 1, lambda g: "mask_inverted" in g),
    ("mask_blur", 6, lambda g: g["mask_blurred"]["inputs"]["blur_radius"] == 6),
    ("mask_blur_x", 4, lambda g: g["mask_blurred"]["inputs"]["blur_radius"] == 4),
    ("mask_blur_x", 8, "mask_blur_x"),  # x ≠ y
    ("inpaint_full_res", True, lambda g: g["overlay0"]["class_type"] == "InpaintAreaPasteA1111"),
    ("inpaint_full_res_padding", 32, lambda g: True),  # read with inpaint_full_res only
    ("inpaint_full_res", None, lambda g: g["area"]["inputs"]["padding"] == 0),  # A1111's API default: true
]


def _check(task: str, payload: dict[str, Any], field: str, check: Check, *, mask: bool = False) -> None:
    if isinstance(check, str):
        with pytest.raises(UnsupportedField) as info:
            _compile(task, payload, mask=mask)
        assert info.value.name == (field if check == REFUSED else check)
        return
    compiled = _compile(task, payload, mask=mask)
    Engine().validate(compiled.graph)
    assert check(compiled.graph), (field, compiled.graph)


@pytest.mark.parametrize(("field", "value", "check"), TXT2IMG_VARIED)
def test_each_txt2img_field_varied(field, value, check) -> None:
    payload = {**TXT2IMG_DEFAULTS, "prompt": "x <lora:style:0.5>", field: value}
    if field == "infotext":
        payload = {k: v for k, v in payload.items()
                   if k not in ("prompt", "negative_prompt", "steps", "sampler_name", "sampler_index", "seed",
                                "width", "height", "cfg_scale")}
    if field == "n_iter":
        payload["steps"] = 3
    _check("txt2img", payload, field, check)


@pytest.mark.parametrize(("field", "value", "check"), IMG2IMG_VARIED + TXT2IMG_VARIED[:12])
def test_each_img2img_field_varied(field, value, check) -> None:
    payload = {**IMG2IMG_DEFAULTS, "init_images": ["base64"], "prompt": "x", field: value}
    _check("img2img", payload, field, check)


@pytest.mark.parametrize(("field", "value", "check"), MASK_VARIED)
def test_each_inpainting_field_varied(field, value, check) -> None:
    payload = {**IMG2IMG_DEFAULTS, "init_images": ["base64"], "mask": "base64", "inpaint_full_res": False,
               field: value}
    _check("img2img", payload, field, check, mask=True)


def test_the_default_request_runs(files) -> None:
    """The whole default request, made small, gives an image (A1111's Euler, seed chosen at random)."""
    compiled = _compile("txt2img", {**TXT2IMG_DEFAULTS, **FAST, "prompt": "a cube"})
    result = Engine().run(compiled.graph, files=files)
    assert len(result.images) == 1 and (result.images[0].width, result.images[0].height) == (64, 64)
