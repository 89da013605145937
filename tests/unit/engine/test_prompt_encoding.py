"""Weighted, long, edited and textual-inversion prompts: the engine's images equal references built here
from the text encoders' raw outputs and run through diffusers' pipelines (or a plain Euler loop).

4 Euler steps on the "normal" schedule: its timesteps (999, 666, 333, 0) need no interpolation, so the
engine's sigmas and diffusers' EulerDiscreteScheduler (linspace) agree exactly."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles, ModelFile
from sdfleet.engine.tensor_file import save_safetensors
from tests.unit.engine.conftest import txt2img_graph

TOLERANCE = 2  # out of 255
STEPS, SEED, CFG = 4, 21, 7.0
Segments = Sequence[tuple[str, float]]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def sd1(model_dir) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(model_dir / "sd1", safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    return pipe


@pytest.fixture(scope="module")
def sdxl(model_dir) -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline.from_pretrained(model_dir / "sdxl")
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    return pipe


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _image(engine: Engine, graph: dict, files: DictModelFiles) -> np.ndarray:
    return _pixels(engine.run(graph, files=files).images[0].png)


def _a1111_graph(prompt: str, negative: str, *, ckpt: str = "sd1.safetensors", steps: int = STEPS) -> dict:
    graph = txt2img_graph(ckpt=ckpt, seed=SEED, steps=steps, cfg=CFG)
    del graph["7"]
    graph["6"] = {"class_type": "A1111Prompt", "inputs": {"clip": ["4", 1], "prompt": prompt,
                                                          "negative_prompt": negative, "steps": steps}}
    graph["3"]["inputs"].update(positive=["6", 0], negative=["6", 1])
    return graph


def _comfy_graph(prompt: str, negative: str) -> dict:
    return txt2img_graph(seed=SEED, steps=STEPS, cfg=CFG, prompt=prompt, negative=negative)


# -- references from the raw text encoders ---------------------------------------------------------------


def _framed(tokenizer, segments: Segments, *, pad_id: int) -> list[tuple[list[int], list[float]]]:
    """Simple reference chunking: tokens in order, a new chunk every 75 tokens or at a BREAK segment."""
    chunks, tokens, weights = [], [], []
    for text, weight in segments:
        if text == "BREAK":
            chunks.append((tokens, weights))
            tokens, weights = [], []
            continue
        for token in tokenizer(text, add_special_tokens=False).input_ids:
            if len(tokens) == 75:
                chunks.append((tokens, weights))
                tokens, weights = [], []
            tokens.append(token)
            weights.append(weight)
    chunks.append((tokens, weights))
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return [([bos, *t, eos, *[pad_id] * (75 - len(t))], [1.0, *w, 1.0, *[1.0] * (75 - len(w))]) for t, w in chunks]


def _a1111_reference(encoder, tokenizer, segments: Segments, *, layer: int | None = None):
    """A1111's "Original" emphasis per chunk: outputs × weights, then the chunk's mean restored."""
    outs, pooled = [], None
    for tokens, weights in _framed(tokenizer, segments, pad_id=tokenizer.pad_token_id):
        with torch.no_grad():
            out = encoder(torch.tensor([tokens]), output_hidden_states=True)
        z = out.last_hidden_state if layer is None else out.hidden_states[layer]
        weighted = z * torch.tensor(weights)[None, :, None]
        outs.append(weighted * (z.mean() / weighted.mean()))
        if pooled is None:
            pooled = getattr(out, "text_embeds", None)
    return torch.cat(outs, dim=1), pooled


def _comfy_reference(encoder, tokenizer, segments: Segments) -> torch.Tensor:
    """ComfyUI: a weighted token's output moves away from the empty prompt's output at its position."""
    ((tokens, weights),) = _framed(tokenizer, segments, pad_id=tokenizer.pad_token_id)
    empty = [tokenizer.bos_token_id, tokenizer.eos_token_id] + [tokenizer.pad_token_id] * 75
    with torch.no_grad():
        z, z_empty = encoder(torch.tensor([tokens, empty])).last_hidden_state
    w = torch.tensor(weights)[:, None]
    return torch.where(w != 1.0, (z - z_empty) * w + z_empty, z)[None]


def _sd1_reference(pipe, positive, negative, **kwargs) -> np.ndarray:
    images = pipe(prompt_embeds=positive, negative_prompt_embeds=negative, num_inference_steps=STEPS,
                  guidance_scale=CFG, height=64, width=64, generator=torch.Generator("cpu").manual_seed(SEED),
                  output_type="np", **kwargs).images
    return (images[0] * 255).round().astype(int)


def _close(got: np.ndarray, expected: np.ndarray) -> bool:
    return int(np.abs(got - expected).max()) <= TOLERANCE


# -- SD 1.x ----------------------------------------------------------------------------------------------


def test_a1111_emphasis_matches_reference_and_changes_the_image(engine, files, sd1) -> None:
    weighted = _image(engine, _a1111_graph("a red (cat:1.6), [[blurry]] dog", "ugly"), files)
    positive, _ = _a1111_reference(sd1.text_encoder, sd1.tokenizer, [
        ("a red ", 1.0), ("cat", 1.6), (", ", 1.0), ("blurry", 1 / 1.21), (" dog", 1.0)])
    negative, _ = _a1111_reference(sd1.text_encoder, sd1.tokenizer, [("ugly", 1.0)])
    assert _close(weighted, _sd1_reference(sd1, positive, negative))
    plain = _image(engine, _a1111_graph("a red cat, blurry dog", "ugly"), files)
    assert not _close(weighted, plain)


def test_comfy_weights_match_reference(engine, files, sd1) -> None:
    weighted = _image(engine, _comfy_graph("a red (cat:1.6) dog", "ugly"), files)
    positive = _comfy_reference(sd1.text_encoder, sd1.tokenizer, [("a red ", 1.0), ("cat", 1.6), (" dog", 1.0)])
    negative = _comfy_reference(sd1.text_encoder, sd1.tokenizer, [("ugly", 1.0)])
    assert _close(weighted, _sd1_reference(sd1, positive, negative))
    assert not _close(weighted, _image(engine, _comfy_graph("a red cat dog", "ugly"), files))


LONG = "cat " * 30 + "(dog:1.4) " + "cat " * 20 + "BREAK bird"  # 90 + 3 + 60 tokens (3 chunks), a BREAK
LONG_SEGMENTS = [("cat " * 30, 1.0), ("dog", 1.4), (" " + "cat " * 19 + "cat", 1.0), ("BREAK", -1.0),
                 ("bird", 1.0)]
LONG_NEGATIVE = "ugly " * 40 + "BREAK bad"  # 160 tokens (3 chunks), then a BREAK: 4 chunks like LONG
LONG_NEGATIVE_SEGMENTS = [("ugly " * 39 + "ugly", 1.0), ("BREAK", -1.0), ("bad", 1.0)]


def test_a1111_long_prompt_matches_chunked_reference(engine, files, sd1) -> None:
    got = _image(engine, _a1111_graph(LONG, LONG_NEGATIVE), files)
    positive, _ = _a1111_reference(sd1.text_encoder, sd1.tokenizer, LONG_SEGMENTS)
    negative, _ = _a1111_reference(sd1.text_encoder, sd1.tokenizer, LONG_NEGATIVE_SEGMENTS)
    assert positive.shape[1] == negative.shape[1] == 4 * 77
    assert _close(got, _sd1_reference(sd1, positive, negative))
    # the text past 77 tokens changes the image (it used to be cut)
    assert not _close(got, _image(engine, _a1111_graph("cat " * 19 + "cat", "ugly " * 15), files))


def _euler_separate_passes(pipe, positive: torch.Tensor, negative: torch.Tensor) -> np.ndarray:
    """Classifier-free guidance with one UNet call per conditioning, as A1111 runs prompts of unequal length."""
    scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    scheduler.set_timesteps(STEPS)
    latents = randn_tensor((1, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(SEED),
                           dtype=torch.float32) * scheduler.init_noise_sigma
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(latents, t)
            uncond = pipe.unet(x, t, encoder_hidden_states=negative).sample
            cond = pipe.unet(x, t, encoder_hidden_states=positive).sample
            latents = scheduler.step(uncond + CFG * (cond - uncond), t, latents).prev_sample
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return ((image[0].permute(1, 2, 0) / 2 + 0.5).clamp(0, 1) * 255).round().int().numpy()


@pytest.mark.parametrize("dialect", ["a1111", "comfy"])
def test_prompt_and_negative_of_different_lengths(engine, files, sd1, dialect: str) -> None:
    prompt = "cat " * 30 + "dog " * 10  # 130 tokens: 2 chunks against the negative's 1
    graph = _a1111_graph(prompt, "ugly") if dialect == "a1111" else _comfy_graph(prompt, "ugly")
    got = _image(engine, graph, files)
    positive, _ = _a1111_reference(sd1.text_encoder, sd1.tokenizer, [(prompt, 1.0)])
    negative, _ = _a1111_reference(sd1.text_encoder, sd1.tokenizer, [("ugly", 1.0)])
    assert positive.shape[1] == 2 * 77
    assert _close(got, _euler_separate_passes(sd1, positive, negative))


@pytest.mark.parametrize(("prompt", "texts"), [
    ("a [cat:dog:1] photo", ["a cat photo"] * 2 + ["a dog photo"] * 2),
    # A1111 counts steps from 0 and switches after `until_step`: [a|b] gives a, a, b, a over 4 steps
    ("a [cat|dog] photo", ["a cat photo", "a cat photo", "a dog photo", "a cat photo"]),
])
def test_a1111_prompt_editing_switches_conditioning_per_step(engine, files, sd1, prompt, texts) -> None:
    per_step = [_a1111_reference(sd1.text_encoder, sd1.tokenizer, [(t, 1.0)])[0] for t in texts]
    negative, _ = _a1111_reference(sd1.text_encoder, sd1.tokenizer, [("", 1.0)])
    unet = engine.loader.checkpoint(files.model_path("checkpoints", "sd1.safetensors")).unet
    seen: list[torch.Tensor] = []
    spy = unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True)
    try:
        got = _image(engine, _a1111_graph(prompt, ""), files)
    finally:
        spy.remove()
    # every model evaluation saw that step's text (rows: negative, then positive)
    assert len(seen) == STEPS
    for step, embeds in enumerate(seen):
        assert torch.allclose(embeds[1:], per_step[step], atol=1e-5), step
        assert torch.allclose(embeds[:1], negative, atol=1e-5)

    def switch(pipe, i, t, kwargs):
        if i + 1 < len(per_step):
            return {"prompt_embeds": torch.cat([negative, per_step[i + 1]])}
        return {}

    expected = _sd1_reference(sd1, per_step[0], negative, callback_on_step_end=switch,
                              callback_on_step_end_tensor_inputs=["prompt_embeds"])
    assert _close(got, expected)


@pytest.fixture(scope="module")
def embedding_file(tmp_path_factory) -> tuple[str, ModelFile]:
    path = tmp_path_factory.mktemp("embeddings") / "myemb.safetensors"
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(9))
    save_safetensors({"emb_params": vectors}, path, metadata={})
    return "myemb.safetensors", ModelFile(path, hashlib.sha256(path.read_bytes()).hexdigest())


@pytest.mark.parametrize("dialect", ["a1111", "comfy"])
def test_textual_inversion_matches_diffusers(engine, files, model_dir, embedding_file, dialect: str) -> None:
    name, file = embedding_file
    files.add_model("embeddings", name, file)
    graph = _a1111_graph("a photo of myemb", "ugly") if dialect == "a1111" \
        else _comfy_graph("a photo of embedding:myemb", "ugly")
    got = _image(engine, graph, files)
    pipe = StableDiffusionPipeline.from_pretrained(model_dir / "sd1", safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    pipe.load_textual_inversion(str(file.path), token="myemb")
    expected = pipe("a photo of myemb", negative_prompt="ugly", num_inference_steps=STEPS, guidance_scale=CFG,
                    height=64, width=64, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np").images
    assert _close(got, (expected[0] * 255).round().astype(int))
    without = _a1111_graph("a photo of myemb", "ugly") if dialect == "a1111" \
        else _comfy_graph("a photo of myemb", "ugly")
    del files.models["embeddings"]
    assert not _close(got, _image(engine, without, files))


# -- SDXL ------------------------------------------------------------------------------------------------


def _sdxl_a1111_reference(pipe, segments: Segments):
    l_out, _ = _a1111_reference(pipe.text_encoder, pipe.tokenizer, segments, layer=-2)
    g_out, pooled = _a1111_reference(pipe.text_encoder_2, pipe.tokenizer_2, segments, layer=-2)
    return torch.cat([l_out, g_out], dim=-1), pooled


def test_sdxl_a1111_weighted_long_prompt_matches_reference(engine, files, sdxl) -> None:
    got = _image(engine, _a1111_graph(LONG, LONG_NEGATIVE, ckpt="sdxl.safetensors"), files)
    positive, pooled = _sdxl_a1111_reference(sdxl, LONG_SEGMENTS)
    negative, negative_pooled = _sdxl_a1111_reference(sdxl, LONG_NEGATIVE_SEGMENTS)
    images = sdxl(prompt_embeds=positive, pooled_prompt_embeds=pooled, negative_prompt_embeds=negative,
                  negative_pooled_prompt_embeds=negative_pooled, num_inference_steps=STEPS, guidance_scale=CFG,
                  height=64, width=64, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np").images
    assert _close(got, (images[0] * 255).round().astype(int))


def test_sdxl_a1111_empty_negative_is_zeros(engine, files, sdxl) -> None:
    got = _image(engine, _a1111_graph("a (red:1.3) cat", "", ckpt="sdxl.safetensors"), files)
    positive, pooled = _sdxl_a1111_reference(sdxl, [("a ", 1.0), ("red", 1.3), (" cat", 1.0)])
    images = sdxl(prompt_embeds=positive, pooled_prompt_embeds=pooled,
                  negative_prompt_embeds=torch.zeros_like(positive),
                  negative_pooled_prompt_embeds=torch.zeros_like(pooled), num_inference_steps=STEPS,
                  guidance_scale=CFG, height=64, width=64, generator=torch.Generator("cpu").manual_seed(SEED),
                  output_type="np").images
    assert _close(got, (images[0] * 255).round().astype(int))


def test_sdxl_comfy_weights_use_each_encoders_empty_prompt(engine, files, sdxl) -> None:
    from sdfleet.engine.nodes.conditioning import encode_text

    ckpt = engine.loader.checkpoint(files.model_path("checkpoints", "sdxl.safetensors"))
    with torch.inference_mode():
        entry = encode_text(ckpt, "a (red:1.3) cat", stop_at_layer=None, device=torch.device("cpu"))
    segments = [("a ", 1.0), ("red", 1.3), (" cat", 1.0)]
    expected = []
    for encoder, tokenizer in ((sdxl.text_encoder, sdxl.tokenizer), (sdxl.text_encoder_2, sdxl.tokenizer_2)):
        ((tokens, weights),) = _framed(tokenizer, segments, pad_id=tokenizer.pad_token_id)
        empty = [tokenizer.bos_token_id, tokenizer.eos_token_id] + [tokenizer.pad_token_id] * 75
        with torch.no_grad():
            out = encoder(torch.tensor([tokens, empty]), output_hidden_states=True)
        z, z_empty = out.hidden_states[-2]
        w = torch.tensor(weights)[:, None]
        expected.append(torch.where(w != 1.0, (z - z_empty) * w + z_empty, z))
        pooled = getattr(out, "text_embeds", None)
    assert torch.allclose(entry.embeds[0], torch.cat(expected, dim=-1), atol=1e-5)
    assert torch.allclose(entry.pooled, pooled[:1], atol=1e-5)


def test_sdxl_refiner_encodes_with_openclip_g_alone(engine, tmp_path_factory) -> None:
    from sdfleet.engine.nodes.conditioning import encode_text
    from sdfleet.engine.text_encoding import encode_a1111, encoders_for
    from sdfleet.engine.tiny import tiny_sdxl_refiner_pipeline

    pipe = tiny_sdxl_refiner_pipeline(seed=0)
    folder = tmp_path_factory.mktemp("refiner") / "refiner"
    pipe.save_pretrained(folder)
    ckpt = engine.loader.checkpoint(ModelFile(folder, "refiner-" + "0" * 56))
    assert ckpt.family == "sdxl_refiner" and ckpt.text_encoder is None
    segments = [("a ", 1.0), ("red", 1.3), (" cat", 1.0)]
    with torch.inference_mode():
        comfy = encode_text(ckpt, "a (red:1.3) cat", stop_at_layer=None, device=torch.device("cpu"))
        (a1111,) = encode_a1111(encoders_for(ckpt, dialect="a1111", stop_at_layer=None), ["a (red:1.3) cat"],
                                embeddings=[], device=torch.device("cpu"))
    encoder, tokenizer = pipe.text_encoder_2, pipe.tokenizer_2
    ((tokens, weights),) = _framed(tokenizer, segments, pad_id=tokenizer.pad_token_id)
    empty = [tokenizer.bos_token_id, tokenizer.eos_token_id] + [tokenizer.pad_token_id] * 75
    with torch.no_grad():
        out = encoder(torch.tensor([tokens, empty]), output_hidden_states=True)
    z, z_empty = out.hidden_states[-2]
    w = torch.tensor(weights)[:, None]
    assert comfy.embeds.shape == (1, 77, 64)
    assert torch.allclose(comfy.embeds[0], torch.where(w != 1.0, (z - z_empty) * w + z_empty, z), atol=1e-5)
    assert torch.allclose(comfy.pooled, out.text_embeds[:1], atol=1e-5)
    expected, pooled = _a1111_reference(encoder, tokenizer, segments, layer=-2)
    assert torch.allclose(a1111.embeds, expected, atol=1e-5) and torch.allclose(a1111.pooled, pooled, atol=1e-5)


@pytest.mark.parametrize(("family", "dialect", "stop", "expected"), [
    ("sd1", "a1111", -2, [(-2, True, "")]),
    ("sd1", "comfy", -2, [(-2, True, "clip_l")]),
    ("sd1", "a1111", None, [(None, False, "")]),
    ("sd2", "a1111", -2, [(None, False, "")]),  # A1111 ignores clip skip on SD 2.x …
    ("sd2", "comfy", -2, [(-2, True, "clip_h")]),
    ("sdxl", "a1111", -3, [(-2, False, "clip_l"), (-2, False, "clip_g")]),  # … and on SDXL
    ("sdxl", "comfy", -3, [(-3, False, "clip_l"), (-3, False, "clip_g")]),
])
def test_which_hidden_state_each_dialect_reads(family, dialect, stop, expected) -> None:
    from types import SimpleNamespace

    from sdfleet.engine.text_encoding import encoders_for

    ckpt = SimpleNamespace(family=family, text_encoder="te", tokenizer="tok",
                           text_encoder_2="te2" if family == "sdxl" else None, tokenizer_2="tok2")
    encoders = encoders_for(ckpt, dialect=dialect, stop_at_layer=stop)
    assert [(e.layer, e.final_norm, e.embedding_key) for e in encoders] == expected


def test_a1111_hires_pass_schedules_from_the_end_of_the_first_pass(engine, files) -> None:
    from sdfleet.engine.model_loader import ClipRef
    from sdfleet.engine.nodes.conditioning import a1111_prompt
    from sdfleet.engine.nodes.context import NodeContext

    ctx = NodeContext(node_id="6", files=files, models=engine.loader, device=torch.device("cpu"),
                      dtype=torch.float32, report_progress=lambda *a: None, check_cancel=lambda: None)
    clip = ClipRef(files.model_path("checkpoints", "sd1.safetensors"))
    with torch.inference_mode():
        (first,), _ = a1111_prompt(ctx, clip=clip, prompt="a [cat:dog:1.5] photo", negative_prompt="", steps=10)
        (hires,), _ = a1111_prompt(ctx, clip=clip, prompt="a [cat:dog:1.5] photo", negative_prompt="", steps=10,
                                   hires_steps=10)
    assert first.schedule == ()  # 1.5 × 10 steps: never switches in the first pass
    assert [s.until_step for s in hires.schedule] == [5, 10]  # 0.5 into the second pass
    assert torch.equal(hires.at_step(5).embeds, first.embeds) and not torch.equal(hires.at_step(6).embeds,
                                                                                    first.embeds)
