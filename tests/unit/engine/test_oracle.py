"""The engine's txt2img / img2img / LoRA graphs reproduce diffusers' own pipelines on tiny random models."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from PIL import Image

from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles
from tests.unit.engine.conftest import txt2img_graph

TOLERANCE = 2  # out of 255


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _reference(images: np.ndarray) -> np.ndarray:
    return (images * 255).round().astype(int)


SCHEDULERS = {
    ("euler", "normal"): lambda c: EulerDiscreteScheduler.from_config(c, timestep_spacing="linspace"),
    ("dpmpp_2m", "karras"): lambda c: DPMSolverMultistepScheduler.from_config(
        c, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True),
}


@pytest.mark.parametrize("pair", list(SCHEDULERS))
def test_sd1_txt2img_matches_stable_diffusion_pipeline(files: DictModelFiles, model_dir, pair) -> None:
    engine = Engine()
    graph = txt2img_graph(sampler=pair[0], scheduler=pair[1], seed=7, steps=5, cfg=6.5)
    result = engine.run(graph, files=files)

    pipe = StableDiffusionPipeline.from_pretrained(model_dir / "sd1", safety_checker=None)
    pipe.scheduler = SCHEDULERS[pair](pipe.scheduler.config)
    expected = pipe("a red cat", negative_prompt="blurry", num_inference_steps=5, guidance_scale=6.5,
                    height=64, width=64, generator=torch.Generator("cpu").manual_seed(7), output_type="np").images
    diff = np.abs(_pixels(result.images[0].png) - _reference(expected[0])).max()
    assert diff <= TOLERANCE
    # a different seed gives a different image, so the comparison can fail
    other = engine.run(txt2img_graph(sampler=pair[0], scheduler=pair[1], seed=8, steps=5, cfg=6.5), files=files)
    assert np.abs(_pixels(other.images[0].png) - _reference(expected[0])).max() > TOLERANCE


def test_sd1_img2img_matches_img2img_pipeline(files: DictModelFiles, model_dir, tmp_path) -> None:
    rng = np.random.default_rng(0)
    source = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(source)
    files.images["in.png"] = source
    graph = txt2img_graph(seed=11, steps=5)
    del graph["5"]
    graph["10"] = {"class_type": "LoadImage", "inputs": {"image": "in.png", "upload": "image"}}
    graph["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    graph["3"]["inputs"].update(latent_image=["11", 0], denoise=0.5)
    result = Engine().run(graph, files=files)

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(model_dir / "sd1", safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    pixels = torch.from_numpy(np.asarray(Image.open(source), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        latents = pipe.vae.encode(pixels * 2 - 1).latent_dist.mode() * pipe.vae.config.scaling_factor
    # ComfyUI semantics: denoise 0.5 over 5 steps = the last 5 steps of a 10-step schedule
    expected = pipe("a red cat", image=latents, negative_prompt="blurry", strength=0.5, num_inference_steps=10,
                    guidance_scale=7.0, generator=torch.Generator("cpu").manual_seed(11), output_type="np").images
    assert np.abs(_pixels(result.images[0].png) - _reference(expected[0])).max() <= TOLERANCE


def test_sdxl_txt2img_matches_sdxl_pipeline(files: DictModelFiles, model_dir) -> None:
    graph = txt2img_graph(ckpt="sdxl.safetensors", seed=3, steps=4, width=64, height=96)
    result = Engine().run(graph, files=files)

    pipe = StableDiffusionXLPipeline.from_pretrained(model_dir / "sdxl")
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    expected = pipe("a red cat", negative_prompt="blurry", num_inference_steps=4, guidance_scale=7.0,
                    height=96, width=64, generator=torch.Generator("cpu").manual_seed(3), output_type="np").images
    assert result.images[0].height == 96 and result.images[0].width == 64
    assert np.abs(_pixels(result.images[0].png) - _reference(expected[0])).max() <= TOLERANCE


@pytest.mark.parametrize("strength", [0.6, 1.0])
def test_lora_matches_diffusers_load_lora_weights(files: DictModelFiles, model_dir, strength: float) -> None:
    engine = Engine()
    plain = engine.run(txt2img_graph(seed=5), files=files)
    graph = txt2img_graph(seed=5)
    graph["20"] = {"class_type": "LoraLoader", "inputs": {
        "model": ["4", 0], "clip": ["4", 1], "lora_name": "style.safetensors",
        "strength_model": strength, "strength_clip": strength}}
    for node_id in ("6", "7"):
        graph[node_id]["inputs"]["clip"] = ["20", 1]
    graph["3"]["inputs"]["model"] = ["20", 0]
    with_lora = engine.run(graph, files=files)

    pipe = StableDiffusionPipeline.from_pretrained(model_dir / "sd1", safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    pipe.load_lora_weights(str(model_dir / "style.safetensors"), adapter_name="style")
    pipe.set_adapters(["style"], adapter_weights=[strength])
    expected = pipe("a red cat", negative_prompt="blurry", num_inference_steps=4, guidance_scale=7.0,
                    height=64, width=64, generator=torch.Generator("cpu").manual_seed(5), output_type="np").images
    got = _pixels(with_lora.images[0].png)
    assert np.abs(got - _reference(expected[0])).max() <= TOLERANCE
    assert np.abs(got - _pixels(plain.images[0].png)).max() > TOLERANCE  # the LoRA changes the image

    # removing the LoRA again gives exactly the base image, with the base model not reloaded
    loads = engine.models.loads
    engine._outputs.clear()
    again = engine.run(txt2img_graph(seed=5), files=files)
    assert engine.models.loads == loads
    assert np.array_equal(_pixels(again.images[0].png), _pixels(plain.images[0].png))
