"""A1111 payloads compile to graphs that validate and run; unsupported fields are rejected by name."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sdfleet.engine.a1111 import InvalidField, UnsupportedField, compile_a1111, parse_lora_tags
from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles
from sdfleet.engine.image_admission import read_png_text
from sdfleet.engine.infotext import parse_infotext
from sdfleet.engine.sampler_names import resolve


def test_lora_tags_are_parsed_and_removed() -> None:
    clean, tags = parse_lora_tags("a cat, <lora:style:0.7> in a hat <lora:other> <lora:x:0.5:0.25>")
    assert clean == "a cat, in a hat"
    assert [(t.name, t.text_encoder, t.unet) for t in tags] == [("style", 0.7, 0.7), ("other", 1.0, 1.0),
                                                                  ("x", 0.5, 0.25)]


@pytest.mark.parametrize(("name", "scheduler", "expected"), [
    ("DPM++ 2M Karras", None, ("dpmpp_2m", "karras")),
    ("DPM++ 2M", "Automatic", ("dpmpp_2m", "karras")),
    ("DPM++ 2M", "Exponential", ("dpmpp_2m", "exponential")),
    ("DPM++ 2M SDE Heun", None, ("dpmpp_2m_sde_heun", "exponential")),
    ("k_dpmpp_2s_a", None, ("dpmpp_2s_ancestral", "karras")),
    ("Euler a", None, ("euler_ancestral", "uniform")),
    ("Euler", "SGM Uniform", ("euler", "sgm_uniform")),
    ("Euler", "align_your_steps", ("euler", "align_your_steps")),
    ("DDIM", None, ("ddim", "uniform")),
])
def test_sampler_names_translate(name, scheduler, expected) -> None:
    assert resolve(name, scheduler) == expected


def test_txt2img_compiles_with_lora_clip_skip_and_resolved_seed() -> None:
    compiled = compile_a1111("txt2img", {
        "prompt": "a cat <lora:style:0.8>", "negative_prompt": "dog", "seed": -1, "sampler_name": "Euler",
        "steps": 3, "cfg_scale": 5, "width": 64, "height": 64, "batch_size": 2, "n_iter": 2,
        "override_settings": {"sd_model_checkpoint": "sd1.safetensors [0123456789]", "CLIP_stop_at_last_layers": 2},
    }, default_checkpoint=None, input_images=[], mask_image=None)
    graph = compiled.graph
    assert 0 <= compiled.seed < 2**32
    assert compiled.all_seeds == [compiled.seed + i for i in range(4)]
    assert graph["ckpt"]["inputs"]["ckpt_name"] == "sd1.safetensors"
    assert graph["lora0"]["inputs"]["lora_name"] == "style.safetensors"
    assert graph["lora0"]["inputs"]["strength_model"] == 0.8
    assert graph["clipskip"]["inputs"]["stop_at_clip_layer"] == -2
    assert graph["prompt"]["inputs"]["prompt"] == "a cat"
    assert graph["prompt"]["inputs"]["negative_prompt"] == "dog"
    assert graph["prompt"]["inputs"]["steps"] == 3
    assert graph["sample1"]["inputs"]["seed"] == compiled.seed + 2
    Engine().validate(graph)


@pytest.mark.parametrize(("field", "value"), [
    ("firstphase_width", 256), ("styles", ["x"]), ("restore_faces", True),
    ("alwayson_scripts", {"ADetailer": {"args": [{"enabled": True}]}}), ("frobnicate", 1),
])
def test_unsupported_fields_are_rejected_by_name(field, value) -> None:
    with pytest.raises(UnsupportedField) as info:
        compile_a1111("txt2img", {"prompt": "x", field: value}, default_checkpoint="a.safetensors",
                      input_images=[], mask_image=None)
    assert info.value.name == field


def test_neutral_defaults_and_bad_values() -> None:
    compile_a1111("txt2img", {"prompt": "x", "styles": [], "restore_faces": False, "s_noise": 1.0},
                  default_checkpoint="a.safetensors", input_images=[], mask_image=None)
    with pytest.raises(InvalidField) as info:
        compile_a1111("txt2img", {"width": 500}, default_checkpoint="a", input_images=[], mask_image=None)
    assert info.value.name == "width" and "multiple of 8" in str(info.value)
    with pytest.raises(UnsupportedField) as unsupported:
        compile_a1111("txt2img", {"override_settings": {"sd_hypernetwork": "x"}}, default_checkpoint="a",
                      input_images=[], mask_image=None)
    assert unsupported.value.name == "override_settings.sd_hypernetwork"
    with pytest.raises(InvalidField) as sampler:
        compile_a1111("txt2img", {"sampler_name": "Nope"}, default_checkpoint="a", input_images=[],
                      mask_image=None)
    assert sampler.value.name == "sampler_name"


def test_img2img_payload_with_lora_and_mask_runs(files: DictModelFiles, tmp_path) -> None:
    rng = np.random.default_rng(1)
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(init)
    mask_pixels = np.zeros((80, 80), dtype=np.uint8)
    mask_pixels[:, 40:] = 255
    Image.fromarray(mask_pixels).save(mask)
    files.images.update({"init.png": init, "mask.png": mask})
    compiled = compile_a1111("img2img", {
        "prompt": "a cat <lora:style:0.9>", "seed": 123, "sampler_name": "DPM++ 2M Karras", "steps": 4,
        "width": 64, "height": 64, "denoising_strength": 0.6, "mask_blur": 2, "inpainting_fill": 1,
        "inpaint_full_res": False, "override_settings": {"sd_model_checkpoint": "sd1.safetensors"},
    }, default_checkpoint=None, input_images=["init.png"], mask_image="mask.png")
    result = Engine().run(compiled.graph, files=files)
    assert len(result.images) == 1
    out = result.images[0]
    assert (out.width, out.height) == (64, 64)
    chunks = read_png_text(out.png)
    info = parse_infotext(chunks["parameters"])
    assert info.prompt == "a cat <lora:style:0.9>"
    assert info.params["Seed"] == "123" and info.params["Sampler"] == "DPM++ 2M"
    assert info.params["Schedule type"] == "Automatic" and info.params["Denoising strength"] == "0.6"
    assert "Lora hashes" in info.params
    # A1111's inpainting keys; "Whole picture" writes no Inpaint area, fill 1 ("original") no Masked content
    assert info.params["Mask blur"] == "2" and "Inpaint area" not in info.params
    assert "Masked content" not in info.params and info.params["Size"] == "64x64"
    assert '"LoraLoader"' in chunks["prompt"]
    # the unmasked left half keeps the (resized) original far more than the masked right half
    pixels = np.asarray(Image.open(io.BytesIO(out.png)).convert("RGB")).astype(int)
    original = np.asarray(Image.open(init).convert("RGB").resize((64, 64), Image.BILINEAR)).astype(int)
    left = np.abs(pixels[:, :24] - original[:, :24]).mean()
    right = np.abs(pixels[:, 40:] - original[:, 40:]).mean()
    assert left < right


@pytest.mark.parametrize("task", ["txt2img", "img2img"])
def test_omitted_steps_are_a1111s_api_default_and_img2img_keeps_its_step_rule(task) -> None:
    """A1111's request model fills an omitted `steps` with StableDiffusionProcessing's 50; img2img samples
    int(steps × strength) of them (KSamplerA1111 without img2img_fix_steps), not ComfyUI's longer schedule."""
    images = ["init.png"] if task == "img2img" else []
    compiled = compile_a1111(task, {"prompt": "x"}, default_checkpoint="a.safetensors", input_images=images,
                             mask_image=None)
    assert compiled.graph["sample0"]["inputs"]["steps"] == 50 and compiled.params["steps"] == 50
    compiled = compile_a1111(task, {"prompt": "x", "steps": None, "denoising_strength": 0.5},
                             default_checkpoint="a.safetensors", input_images=images, mask_image=None)
    sample = compiled.graph["sample0"]
    assert sample["class_type"] == "KSamplerA1111" and sample["inputs"]["steps"] == 50
    assert "img2img_fix_steps" not in sample["inputs"]
    if task == "img2img":
        from sdfleet.engine.a1111_sampling import A1111Plan, encode_steps

        plan = A1111Plan("euler", "uniform", 20, seeds=None, denoise=0.5)  # type: ignore[arg-type]
        assert encode_steps(plan) == 10  # A1111's t_enc = int(min(0.5, 0.999) × 20)
