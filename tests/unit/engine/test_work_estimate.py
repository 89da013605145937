"""Work estimates from propagated shapes: every size- or batch-changing node counts, and the propagated
shapes equal what the engine's nodes really produce."""

from __future__ import annotations

import copy

import pytest
from PIL import Image

from sdfleet.engine.executor import Engine
from sdfleet.engine.work_estimate import MIN_SAMPLER_PIXELS, Shape, estimate_work, propagate_shapes

SAMPLER = {"seed": 1, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
           "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0]}
BASE = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd1.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
}


def _no_images(name: str) -> tuple[int, int]:
    raise AssertionError(f"no image {name} expected")


def issue_chain(*, steps: int = 150) -> dict:
    """64×64 → LatentUpscaleBy 8 → LatentUpscaleBy 8 → RepeatLatentBatch 64 → KSampler (issue 11, item 3)."""
    return {**copy.deepcopy(BASE),
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "10": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["5", 0], "upscale_method": "nearest-exact",
                                                               "scale_by": 8.0}},
            "11": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["10", 0],
                                                               "upscale_method": "nearest-exact", "scale_by": 8.0}},
            "12": {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["11", 0], "amount": 64}},
            "3": {"class_type": "KSampler", "inputs": {**SAMPLER, "steps": steps, "latent_image": ["12", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}}


def test_the_issue_chain_counts_every_upscale_and_the_batch():
    estimate = estimate_work(issue_chain(), image_size=_no_images)
    sampler = next(n for n in estimate.nodes if n.node_id == "3")
    assert sampler.shape == Shape(4096, 4096, 64) and sampler.steps == 150
    assert sampler.work == 4096 * 4096 * 64 * 150
    assert estimate.largest() is sampler
    assert estimate.total == sampler.work + 4096 * 4096 * 64  # plus the VAE decode of the batch
    assert "node 3 (KSampler): 4096x4096 × batch 64 × 150 steps" in sampler.describe()


def test_each_sampler_counts_at_its_own_size_and_small_ones_at_the_floor():
    graph = issue_chain(steps=10)
    graph["13"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "enable", "noise_seed": 1, "steps": 30, "start_at_step": 10, "end_at_step": 25,
        "return_with_leftover_noise": "disable", "latent_image": ["5", 0]}}
    work = {n.node_id: n.work for n in estimate_work(graph, image_size=_no_images).nodes}
    assert work["3"] == 4096 * 4096 * 64 * 10
    assert work["13"] == MIN_SAMPLER_PIXELS * 15  # 64×64 is below the floor; steps 10..25 of 30 run


def test_a_very_long_chain_is_estimated_without_recursion():
    graph = {"0": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    for i in range(1, 5000):
        graph[str(i)] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": [str(i - 1), 0], "amount": 1}}
    assert propagate_shapes(graph, _no_images)[("4999", 0)] == Shape(64, 64, 1)


@pytest.mark.parametrize("case", ["txt2img-chain", "img2img"])
def test_propagated_shapes_match_what_the_engine_produces(files, tmp_path, case):
    source = tmp_path / "in.png"
    Image.new("RGB", (50, 70), "blue").save(source)
    files.images["in.png"] = source
    if case == "txt2img-chain":
        nodes = {
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 72, "height": 56, "batch_size": 2}},
            "10": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["5", 0], "upscale_method": "bilinear",
                                                               "scale_by": 1.5}},
            "11": {"class_type": "LatentUpscale", "inputs": {"samples": ["10", 0], "upscale_method": "bilinear",
                                                             "width": 0, "height": 96, "crop": "disabled"}},
            "12": {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["11", 0], "amount": 2}},
            "3": {"class_type": "KSampler", "inputs": {**SAMPLER, "steps": 1, "latent_image": ["12", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "13": {"class_type": "ImageScale", "inputs": {"image": ["8", 0], "upscale_method": "bilinear",
                                                          "width": 0, "height": 40, "crop": "disabled"}},
            "14": {"class_type": "ImageScaleBy", "inputs": {"image": ["13", 0], "upscale_method": "bilinear",
                                                            "scale_by": 0.75}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "x"}}}
    else:
        nodes = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
            "2": {"class_type": "ImageScaleBy", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                           "scale_by": 1.3}},
            "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["4", 2]}},
            "3": {"class_type": "KSampler", "inputs": {**SAMPLER, "steps": 1, "denoise": 0.5,
                                                       "latent_image": ["5", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}}
    graph = {**copy.deepcopy(BASE), **nodes}
    saved = propagate_shapes(graph, lambda name: (50, 70))[(graph["9"]["inputs"]["images"][0], 0)]
    images = Engine(device="cpu").run(graph, files=files).images
    assert Shape(images[0].width, images[0].height, len(images)) == saved
