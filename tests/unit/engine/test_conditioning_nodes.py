"""ComfyUI's conditioning nodes: the tensor edits against their documented formulas, area and mask conditioning
against ComfyUI's `calc_cond_batch` written out here with explicit loops (on the tiny SD1 UNet), and the
SDXL text encoders against CLIPTextEncode where ComfyUI makes them equal."""

from __future__ import annotations

import io
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sdfleet.engine.denoising import Denoiser, Guidance, _time_ids
from sdfleet.engine.executor import Engine, node_registry
from sdfleet.engine.files import DictModelFiles
from sdfleet.engine.model_patches import model_sampling_for
from sdfleet.engine.nodes.conditioning import CondEntry, Region, ScheduledCond, SizeConditioning, encode_text
from tests.unit.engine.conftest import txt2img_graph

CTX = SimpleNamespace(check_cancel=lambda: None)
CPU = torch.device("cpu")


def run(class_type: str, **inputs):
    return node_registry().get(class_type).execute(CTX, **inputs)


def entry(tokens: int, *, seed: int, pooled: bool = True, schedule: bool = False) -> CondEntry:
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(1, tokens, 8, generator=g)
    pool = torch.randn(1, 4, generator=g) if pooled else None
    steps = (ScheduledCond(3, embeds), ScheduledCond(10, torch.randn(1, tokens, 8, generator=g))) if schedule else ()
    return CondEntry(embeds, pool, schedule=steps)


def test_concat_average_zero_out_and_timestep_range():
    to, source = entry(154, seed=1, schedule=True), entry(77, seed=2)
    ((concat,),) = run("ConditioningConcat", conditioning_to=[to], conditioning_from=[source, entry(77, seed=3)])
    assert torch.equal(concat.embeds, torch.cat([to.embeds, source.embeds], dim=1))
    assert torch.equal(concat.schedule[1].embeds, torch.cat([to.schedule[1].embeds, source.embeds], dim=1))
    assert torch.equal(concat.pooled, to.pooled)

    ((average,),) = run("ConditioningAverage", conditioning_to=[to], conditioning_from=[source],
                        conditioning_to_strength=0.25)
    padded = torch.cat([source.embeds, torch.zeros(1, 77, 8)], dim=1)  # `from` is shorter: zeros after it
    torch.testing.assert_close(average.embeds, to.embeds * 0.25 + padded * 0.75)
    torch.testing.assert_close(average.pooled, to.pooled * 0.25 + source.pooled * 0.75)
    ((cut,),) = run("ConditioningAverage", conditioning_to=[source], conditioning_from=[to],
                    conditioning_to_strength=0.5)
    torch.testing.assert_close(cut.embeds, source.embeds * 0.5 + to.embeds[:, :77] * 0.5)
    ((no_pool,),) = run("ConditioningAverage", conditioning_to=[entry(77, seed=4, pooled=False)],
                        conditioning_from=[source], conditioning_to_strength=0.5)
    assert torch.equal(no_pool.pooled, source.pooled)

    ((zero,),) = run("ConditioningZeroOut", conditioning=[to])
    assert not zero.embeds.any() and not zero.pooled.any() and not zero.schedule[1].embeds.any()
    assert zero.embeds.shape == to.embeds.shape

    ((ranged,),) = run("ConditioningSetTimestepRange", conditioning=[to], start=0.2, end=0.7)
    assert (ranged.start_percent, ranged.end_percent) == (0.2, 0.7) and ranged.embeds is to.embeds


def test_area_and_mask_nodes_set_the_region():
    plain = [entry(77, seed=5)]
    ((area,),) = run("ConditioningSetArea", conditioning=plain, width=200, height=64, x=17, y=64, strength=2.0)
    assert area.region == Region(area=(8, 25, 8, 2), strength=2.0)
    ((pct,),) = run("ConditioningSetAreaPercentage", conditioning=plain, width=0.5, height=1.0, x=0.5, y=0.0,
                    strength=1.0)
    assert pct.region.area == ("percentage", 1.0, 0.5, 0.0, 0.5)
    mask = torch.ones(16, 16)
    ((masked,),) = run("ConditioningSetMask", conditioning=[area], mask=mask, strength=0.5,
                       set_cond_area="mask bounds")
    assert masked.region.mask.shape == (1, 16, 16) and masked.region.set_area_to_bounds
    assert masked.region.mask_strength == 0.5 and masked.region.area == (8, 25, 8, 2), "the area is kept"
    ((strong,),) = run("ConditioningSetAreaStrength", conditioning=plain, strength=3.0)
    assert strong.region.strength == 3.0 and not strong.region.plain


def _reference_weight(region: Region, batch: int, height: int, width: int):
    """ComfyUI's resolve_areas_and_cond_masks + get_area_and_mult, written out with loops."""
    area, mask = region.area, None
    if area is not None and area[0] == "percentage":
        _, h, w, y, x = area
        area = (max(1, round(h * height)), max(1, round(w * width)), round(y * height), round(x * width))
    if region.mask is not None:
        mask = torch.nn.functional.interpolate(region.mask[:, None].float(), size=(height, width),
                                               mode="bilinear", align_corners=False)[:, 0]
        if region.set_area_to_bounds:
            ys, xs = np.nonzero(mask.abs().amax(dim=0).numpy())
            area = (max(8, ys.max() - ys.min() + 1), max(8, xs.max() - xs.min() + 1), ys.min(), xs.min())
    h, w, y, x = area if area is not None else (height, width, 0, 0)
    h, w = min(height - y, h), min(width - x, w)
    weight = np.ones((batch, 4, h, w), dtype=np.float32)
    if mask is not None:
        weight *= (mask[:, y:y + h, x:x + w] * region.mask_strength).numpy()[:, None]
    weight *= region.strength
    if mask is None and area is not None:
        for axis, (size, offset, full) in ((2, (h, y, height)), (3, (w, x, width))):
            rr = min(8, size // 4)
            for t in range(rr):
                f = (t + 1) / rr
                if offset != 0:
                    np.moveaxis(weight, axis, 0)[t] *= f
                if offset + size < full:
                    np.moveaxis(weight, axis, 0)[size - 1 - t] *= f
    return (y, x, h, w), torch.from_numpy(weight)


def test_area_and_mask_conditioning_match_comfyuis_weighted_mean(files: DictModelFiles) -> None:
    engine = Engine()
    ckpt = engine.loader.checkpoint(files.model_path("checkpoints", "sd1.safetensors"))
    sampling = model_sampling_for(ckpt.scheduler_config, ())
    with torch.inference_mode():
        a, b, c, n = (encode_text(ckpt, text, stop_at_layer=None, device=CPU)
                      for text in ("a red cat", "a blue sky over the sea", "grass", "blurry"))
        mask = torch.zeros(1, 40, 48)
        mask[:, 8:30, 20:44] = torch.linspace(0.2, 1.0, 24)
        positive = [replace(a, region=Region(area=(12, 10, 2, 3), strength=0.8)),
                    replace(b, region=Region(mask=mask, mask_strength=0.7)),
                    replace(c, region=Region(area=("percentage", 0.5, 1.0, 0.5, 0.0))),
                    replace(c, region=Region(mask=mask, set_area_to_bounds=True))]
        negative = [n]
        x = torch.randn(2, 4, 20, 24, generator=torch.Generator().manual_seed(3)) * 4.0
        sigma = torch.tensor(4.0)
        got = Denoiser(Guidance(unet=ckpt.unet, sampling=sampling, positive=positive, negative=negative,
                                cfg=3.0))(x, sigma)

        t = sampling.timestep(sigma.reshape(1), quantize=True)

        def predict(e: CondEntry, window: torch.Tensor) -> torch.Tensor:
            out = ckpt.unet(window / (sigma ** 2 + 1) ** 0.5, t.expand(window.shape[0]),
                            encoder_hidden_states=e.embeds.expand(window.shape[0], -1, -1), return_dict=False)[0]
            return sampling.denoised(window, out.float(), sigma)

        sums, counts = torch.zeros_like(x), torch.full_like(x, 1e-37)
        for e in positive:
            (y0, x0, h, w), weight = _reference_weight(e.region, 2, 20, 24)
            sums[:, :, y0:y0 + h, x0:x0 + w] += predict(e, x[:, :, y0:y0 + h, x0:x0 + w]) * weight
            counts[:, :, y0:y0 + h, x0:x0 + w] += weight
        cond, uncond = sums / counts, predict(n, x)
        expected = uncond + (cond - uncond) * 3.0
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


def _pixels(result) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(i.png)).convert("RGB")).astype(int) for i in result.images]


def _max_diff(a, b) -> int:
    return max(int(np.abs(x - y).max()) for x, y in zip(_pixels(a), _pixels(b), strict=True))


@pytest.mark.parametrize("node", [
    {"class_type": "ConditioningSetArea", "inputs": {"width": 64, "height": 64, "x": 0, "y": 0, "strength": 1.0}},
    {"class_type": "ConditioningSetMask", "inputs": {"mask": ["41", 0], "strength": 1.0, "set_cond_area": "default"}},
    {"class_type": "ConditioningSetTimestepRange", "inputs": {"start": 0.0, "end": 1.0}},
], ids=["whole-area", "whole-mask", "whole-range"])
def test_a_region_covering_everything_gives_the_plain_image(files: DictModelFiles, node) -> None:
    engine = Engine()
    plain = engine.run(txt2img_graph(steps=3, batch=2), files=files)
    graph = txt2img_graph(steps=3, batch=2)
    graph["41"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}
    graph["40"] = {"class_type": node["class_type"], "inputs": {**node["inputs"], "conditioning": ["6", 0]}}
    graph["3"]["inputs"]["positive"] = ["40", 0]
    assert _max_diff(engine.run(graph, files=files), plain) <= 1


def test_regional_prompts_change_their_part_of_the_image(files: DictModelFiles) -> None:
    engine = Engine()
    graph = txt2img_graph(steps=4, width=128, height=64, prompt="sky")
    graph["42"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a red dragon, fire", "clip": ["4", 1]}}
    graph["43"] = {"class_type": "ConditioningSetArea", "inputs": {
        "conditioning": ["42", 0], "width": 64, "height": 64, "x": 64, "y": 0, "strength": 1.0}}
    graph["44"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0],
                                                                   "conditioning_2": ["43", 0]}}
    plain = engine.run(graph, files=files)
    graph["3"]["inputs"]["positive"] = ["44", 0]
    (regional,), (base,) = _pixels(engine.run(graph, files=files)), _pixels(plain)
    left, right = np.abs(regional - base)[:, :24].mean(), np.abs(regional - base)[:, 88:].mean()
    assert right > 2 * left and right > 3, (left, right)


def test_clip_text_encode_sdxl_equals_clip_text_encode_at_the_image_size(files: DictModelFiles) -> None:
    engine = Engine()
    plain = engine.run(txt2img_graph(ckpt="sdxl.safetensors", steps=2), files=files)
    graph = txt2img_graph(ckpt="sdxl.safetensors", steps=2)
    sizes = {"width": 64, "height": 64, "crop_w": 0, "crop_h": 0, "target_width": 64, "target_height": 64}
    graph["6"] = {"class_type": "CLIPTextEncodeSDXL", "inputs": {
        "clip": ["4", 1], "text_g": "a red cat", "text_l": "a red cat", **sizes}}
    assert _max_diff(engine.run(graph, files=files), plain) <= 1
    graph["6"]["inputs"].update(width=1024, height=1024, crop_w=32)
    assert _max_diff(engine.run(graph, files=files), plain) > 3, "size conditioning reaches the UNet"


def test_clip_text_encode_sdxl_pads_the_shorter_text_with_empty_chunks(files: DictModelFiles) -> None:
    engine = Engine()
    ckpt = engine.loader.checkpoint(files.model_path("checkpoints", "sdxl.safetensors"))
    long = "a very long prompt " * 8  # 152 characters: two chunks of the one-token-per-character tokenizer
    ctx = SimpleNamespace(models=engine.loader, files=files, device=CPU)
    from sdfleet.engine.model_loader import ClipRef
    from sdfleet.engine.nodes.conditioning import clip_text_encode_sdxl
    clip = ClipRef(files.model_path("checkpoints", "sdxl.safetensors"))
    with torch.inference_mode():
        ((got,),) = clip_text_encode_sdxl(ctx, clip=clip, width=1, height=2, crop_w=3, crop_h=4, target_width=5,
                                          target_height=6, text_g="cat", text_l=long)
        empty_g = encode_text(ckpt, "", stop_at_layer=None, device=CPU).embeds
        short_g = encode_text(ckpt, "cat", stop_at_layer=None, device=CPU)
        long_both = encode_text(ckpt, long, stop_at_layer=None, device=CPU).embeds
    width_l = ckpt.text_encoder.config.hidden_size
    assert got.embeds.shape == long_both.shape == (1, 154, long_both.shape[-1])
    torch.testing.assert_close(got.embeds[:, :, :width_l], long_both[:, :, :width_l])
    torch.testing.assert_close(got.embeds[:, :77, width_l:], short_g.embeds[:, :, width_l:])
    torch.testing.assert_close(got.embeds[:, 77:, width_l:], empty_g[:, :, width_l:])
    torch.testing.assert_close(got.pooled, short_g.pooled)
    assert got.size == SizeConditioning(1, 2, 3, 4, 5, 6)
    sd1 = SimpleNamespace(models=engine.loader, files=files, device=CPU)
    with pytest.raises(ValueError, match="SDXL base CLIP"):
        clip_text_encode_sdxl(sd1, clip=ClipRef(files.model_path("checkpoints", "sd1.safetensors")), width=1,
                              height=1, crop_w=0, crop_h=0, target_width=1, target_height=1, text_g="a", text_l="a")


def test_size_conditioning_becomes_sdxl_time_ids():
    def unet(time_ids: int):
        return SimpleNamespace(add_embedding=SimpleNamespace(linear_1=SimpleNamespace(in_features=8 + 2 * time_ids)),
                               config=SimpleNamespace(addition_time_embed_dim=2))

    assert _time_ids(unet(6), 8, 64, 96, negative=False) == [64, 96, 0, 0, 64, 96]
    size = SizeConditioning(width=1024, height=768, crop_w=3, crop_h=4, target_width=512, target_height=256)
    assert _time_ids(unet(6), 8, 64, 96, negative=False, size=size) == [768, 1024, 4, 3, 256, 512]
    assert _time_ids(unet(5), 8, 64, 96, negative=True) == [64, 96, 0, 0, 2.5]
    refiner = SizeConditioning(width=1024, height=1024, aesthetic_score=7.5)
    assert _time_ids(unet(5), 8, 64, 96, negative=True, size=refiner) == [1024, 1024, 0, 0, 7.5]
