"""A1111's hires fix: the compiled graph equals a two-pass reference built from the engine's plain pieces.

The reference is written here by hand as A1111's `sample_hr_pass` does it: the first pass, ComfyUI's own
LatentUpscale (bilinear, what A1111's "Latent" mode calls) or a decode + Lanczos + encode, the latent
truncation, then img2img with A1111's *other* step rule. A1111's hires pass runs exactly `hr_steps` steps of
an int(hr_steps / strength)-step schedule (`img2img_fix_steps`); with hr_steps 4 and strength 0.45 that is
the last 4 steps of 8, which the ordinary img2img rule (int(8 × 0.45) + 1 = 4 steps of 8) gives too.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sdfleet.engine.a1111 import InvalidField, compile_a1111
from sdfleet.engine.a1111_hires import target_size
from sdfleet.engine.executor import Engine
from sdfleet.engine.image_admission import read_png_text
from sdfleet.engine.infotext import parse_infotext

BASE = {"prompt": "a red cube", "negative_prompt": "blurry", "seed": 7, "sampler_name": "Euler", "steps": 3,
        "cfg_scale": 5, "width": 64, "height": 64, "enable_hr": True, "hr_second_pass_steps": 4,
        "denoising_strength": 0.45, "override_settings": {"sd_model_checkpoint": "sd1.safetensors"}}


def _compile(payload: dict):
    return compile_a1111("txt2img", payload, default_checkpoint=None, input_images=[], mask_image=None,
                         lora_names=["style.safetensors"])


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _reference(first: dict, *, upscale: dict, crop: dict | None = None, steps: int = 8,
               fixed: bool = False) -> dict:
    """The plain two-pass graph: first pass, `upscale` nodes ending in node "up", img2img on it."""
    second = {**first, "latent_image": ["crop" if crop else "up", 0], "steps": steps, "denoise": 0.45}
    if fixed:
        second["img2img_fix_steps"] = True
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd1.safetensors"}},
        "prompt": {"class_type": "A1111Prompt", "inputs": {"clip": ["ckpt", 1], "prompt": "a red cube",
                                                           "negative_prompt": "blurry", "steps": 3}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "first": {"class_type": "KSamplerA1111", "inputs": first},
        **upscale,
        "second": {"class_type": "KSamplerA1111", "inputs": second},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["second", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "ref"}},
    }
    if crop:
        graph["crop"] = {"class_type": "LatentCrop", "inputs": {"samples": ["up", 0], **crop}}
    return graph


def _first_pass(compiled) -> dict:
    first = dict(compiled.graph["sample0"]["inputs"])
    first.update(model=["ckpt", 0], positive=["prompt", 0], negative=["prompt", 1], latent_image=["latent", 0])
    return first


def test_latent_hires_equals_the_two_pass_reference(files) -> None:
    compiled = _compile({**BASE, "hr_upscaler": "Latent"})
    engine = Engine()
    out = engine.run(compiled.graph, files=files).images
    assert len(out) == 1 and (out[0].width, out[0].height) == (128, 128)
    upscale = {"up": {"class_type": "LatentUpscale", "inputs": {
        "samples": ["first", 0], "upscale_method": "bilinear", "width": 128, "height": 128, "crop": "disabled"}}}
    reference = engine.run(_reference(_first_pass(compiled), upscale=upscale), files=files).images[0]
    assert np.abs(_pixels(out[0].png) - _pixels(reference.png)).max() <= 1
    # the ordinary img2img rule at 4 steps would run int(4 × 0.45) + 1 = 2 steps: another image
    short = engine.run(_reference(_first_pass(compiled), upscale=upscale, steps=4), files=files).images[0]
    assert np.abs(_pixels(out[0].png) - _pixels(short.png)).max() > 8
    info = parse_infotext(read_png_text(out[0].png)["parameters"])
    assert info.prompt == "a red cube" and info.negative_prompt == "blurry"
    assert {k: info.params[k] for k in ("Steps", "Sampler", "Seed", "Size", "Denoising strength", "Hires upscale",
                                        "Hires steps", "Hires upscaler")} == {
        "Steps": "3", "Sampler": "Euler", "Seed": "7", "Size": "64x64", "Denoising strength": "0.45",
        "Hires upscale": "2", "Hires steps": "4", "Hires upscaler": "Latent"}
    keys = list(info.params)
    assert keys.index("Denoising strength") < keys.index("Hires upscale") < keys.index("Hires steps") < keys.index(
        "Hires upscaler") < keys.index("Version")
    assert "Hires sampler" not in info.params and "Hires prompt" not in info.params


def test_pixel_hires_with_resize_and_truncation_equals_the_reference(files) -> None:
    """Lanczos upscaler to 128×96 from 64×64: A1111 upscales to 128×128 and cuts 4 latent rows (2 each side)."""
    compiled = _compile({**BASE, "hr_upscaler": "Lanczos", "hr_resize_x": 128, "hr_resize_y": 96})
    engine = Engine()
    out = engine.run(compiled.graph, files=files).images[0]
    assert (out.width, out.height) == (128, 96)
    upscale = {
        "low": {"class_type": "VAEDecode", "inputs": {"samples": ["first", 0], "vae": ["ckpt", 2]}},
        "big": {"class_type": "ImageScale", "inputs": {"image": ["low", 0], "upscale_method": "lanczos",
                                                       "width": 128, "height": 128, "crop": "disabled"}},
        "up": {"class_type": "VAEEncode", "inputs": {"pixels": ["big", 0], "vae": ["ckpt", 2]}},
    }
    crop = {"x": 0, "y": 16, "width": 128, "height": 96}
    reference = engine.run(_reference(_first_pass(compiled), upscale=upscale, crop=crop), files=files).images[0]
    assert np.abs(_pixels(out.png) - _pixels(reference.png)).max() <= 1
    info = parse_infotext(read_png_text(out.png)["parameters"])
    assert info.params["Hires resize"] == "128x96" and info.params["Hires upscaler"] == "Lanczos"
    assert info.params["Size"] == "64x64"


def test_second_pass_sampler_prompt_and_checkpoint(files) -> None:
    compiled = _compile({**BASE, "hr_sampler_name": "DPM++ 2M", "hr_scheduler": "Exponential",
                         "hr_prompt": "a blue cube <lora:style:0.5>", "hr_negative_prompt": "",
                         "hr_checkpoint_name": "sd1.safetensors [0123456789]", "n_iter": 2, "batch_size": 2})
    graph = compiled.graph
    hr = graph["hr_sample1"]["inputs"]
    assert (hr["sampler_name"], hr["scheduler"], hr["steps"], hr["img2img_fix_steps"]) == ("dpmpp_2m", "exponential", 4,
                                                                                           True)
    assert hr["seed"] == graph["sample1"]["inputs"]["seed"] == compiled.seed + 2  # the same seeds as pass one
    assert graph["hr_prompt"]["inputs"]["prompt"] == "a blue cube" and graph["hr_prompt"]["inputs"]["hires_steps"] == 4
    assert graph["hr_prompt"]["inputs"]["negative_prompt"] == "blurry"  # empty: the first pass's
    assert graph["hr_lora0"]["inputs"]["strength_model"] == 0.5 and "lora0" not in graph
    out = Engine().run(graph, files=files).images
    assert len(out) == 4 and all((o.width, o.height) == (128, 128) for o in out)
    info = parse_infotext(read_png_text(out[3].png)["parameters"])
    assert info.params["Seed"] == str(compiled.seed + 3)
    assert info.params["Hires sampler"] == "DPM++ 2M" and info.params["Hires schedule type"] == "Exponential"
    assert info.params["Hires prompt"] == "a blue cube <lora:style:0.5>"
    assert info.params["Hires checkpoint"] == "sd1" and "Hires upscaler" not in info.params


@pytest.mark.parametrize(("size", "fields", "expected"), [
    ((64, 64), {"hr_scale": 2}, (128, 128, 0, 0)),
    ((512, 768), {"hr_scale": 1.5}, (768, 1152, 0, 0)),
    ((512, 768), {"hr_resize_x": 1024}, (1024, 1536, 0, 0)),
    ((768, 512), {"hr_resize_y": 1024}, (1536, 1024, 0, 0)),
    ((512, 512), {"hr_resize_x": 1024, "hr_resize_y": 768}, (1024, 1024, 0, 32)),
    ((512, 768), {"hr_resize_x": 1024, "hr_resize_y": 1024}, (1024, 1536, 0, 64)),
    ((768, 512), {"hr_resize_x": 1024, "hr_resize_y": 1024}, (1536, 1024, 64, 0)),
])
def test_target_size_as_a1111_calculates_it(size, fields, expected) -> None:
    assert target_size(fields, *size)[:4] == expected


@pytest.mark.parametrize(("fields", "name"), [
    ({"hr_upscaler": "ESRGAN_4x"}, "hr_upscaler"), ({"hr_sampler_name": "Nope"}, "hr_sampler_name"),
    ({"hr_scheduler": "Nope"}, "hr_scheduler"), ({"denoising_strength": 0}, "denoising_strength"),
    ({"hr_scale": 9}, "hr_scale"), ({"hr_resize_x": 20000}, "hr_resize_x"),
])
def test_bad_hires_fields_are_named(fields, name) -> None:
    with pytest.raises(InvalidField) as info:
        _compile({**BASE, **fields})
    assert info.value.name == name


def test_the_api_server_compiles_hires_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; from sdfleet.engine.a1111 import compile_a1111; compile_a1111('txt2img', {'enable_hr': "
            "True, 'hr_upscaler': 'Lanczos'}, default_checkpoint='a', input_images=[], mask_image=None); "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
