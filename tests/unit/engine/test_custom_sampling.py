"""ComfyUI's custom-sampling nodes and model patches, against k-diffusion (and diffusers' FreeU primitives).

Each reference is built in the test from the oracle's own functions and ComfyUI's documented formulas:
k-diffusion's samplers, schedules and denoiser wrappers around the tiny UNet; ComfyUI's dual-CFG,
RescaleCFG and LCM formulas; diffusers' `fourier_filter` for FreeU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils.torch_utils import fourier_filter

from sdfleet.engine.executor import Engine
from sdfleet.engine.model_patches import FreeUPatch, unet_patched
from sdfleet.engine.nodes import custom_sampling
from tests.unit.engine.conftest import txt2img_graph
from tests.unit.engine.kdiffusion_oracle import load
from tests.unit.engine.test_sampler_oracle import (
    BROWNIAN,
    SIZE,
    TOLERANCE,
    _decode,
    _pixels,
    _run_k_diffusion,
    comfy_reference,
)

PROMPT, NEGATIVE, MIDDLE = "a red cat", "blurry", "a dog"


@pytest.fixture(scope="module")
def pipe(model_dir) -> StableDiffusionPipeline:
    return StableDiffusionPipeline.from_pretrained(model_dir / "sd1", safety_checker=None)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


class _Guided(torch.nn.Module):
    """The tiny UNet's eps for a set of prompts, combined as a ComfyUI guider does (in x0 space)."""

    def __init__(self, pipe, prompts: list[str], combine) -> None:
        super().__init__()
        self.unet = pipe.unet
        self.embeds = [pipe.encode_prompt(p, torch.device("cpu"), 1, False)[0] for p in prompts]
        self.combine = combine

    def forward(self, x, t, sigma):
        n, batch = len(self.embeds), x.shape[0]
        context = torch.cat([e.expand(batch, -1, -1) for e in self.embeds])
        t = torch.as_tensor(t).reshape(-1).expand(batch * n)
        eps = self.unet(x.repeat(n, 1, 1, 1), t, encoder_hidden_states=context).sample.chunk(n)
        return self.combine(*eps)


def _denoiser(pipe, prompts: list[str], combine, *, alphas_cumprod=None, v=False):
    """k-diffusion's wrapper (eps or v) around the guided UNet, timesteps rounded as ComfyUI does."""
    kd = load().external
    cls = kd.DiscreteVDDPMDenoiser if v else kd.DiscreteEpsDDPMDenoiser
    alphas = pipe.scheduler.alphas_cumprod if alphas_cumprod is None else alphas_cumprod
    model = _Guided(pipe, prompts, combine)
    den = cls(lambda x, t: model(x, t, None), alphas, quantize=True)
    return den


def _graph_custom(*, sampler: str, sigmas_node: dict, cfg: float = 6.0, seed: int = 11, add_noise=True) -> dict:
    graph = txt2img_graph(width=SIZE, height=SIZE)
    graph["3"] = {"class_type": "SamplerCustom", "inputs": {
        "model": ["4", 0], "add_noise": add_noise, "noise_seed": seed, "cfg": cfg, "positive": ["6", 0],
        "negative": ["7", 0], "sampler": ["20", 0], "sigmas": ["21", 0], "latent_image": ["5", 0]}}
    graph["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler}}
    graph["21"] = sigmas_node
    return graph


def _sample_reference(pipe, den, sampler: str, sigmas: torch.Tensor, *, seed: int, noise=True) -> np.ndarray:
    kd = load().sampling
    shape = (1, 4, SIZE // 8, SIZE // 8)
    initial = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) if noise else torch.zeros(shape)
    top = math.isclose(float(sigmas[0]), float(den.sigma_max), rel_tol=1e-5)
    x = initial * (float((1 + sigmas[0] ** 2) ** 0.5) if top else sigmas[0])
    if sampler in BROWNIAN:
        noise_sampler = kd.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed)
    else:
        generator = torch.Generator().manual_seed(seed + 1)
        noise_sampler = lambda a, b: torch.randn(shape, generator=generator)  # noqa: E731
    with torch.no_grad():
        samples = _run_k_diffusion(sampler, den, x, sigmas, noise_sampler, eta=1.0, comfy=True)
    return _decode(pipe, samples)[0]


def _cfg(scale):
    return lambda uncond, cond: uncond + (cond - uncond) * scale


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2m_sde", "heun"])
def test_sampler_custom_with_basic_scheduler_equals_ksampler_and_k_diffusion(engine, files, pipe, sampler) -> None:
    scheduler = {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "karras", "steps": 3,
                                                            "denoise": 1.0}}
    result = engine.run(_graph_custom(sampler=sampler, sigmas_node=scheduler), files=files)
    got = _pixels(result.images[0].png)
    ksampler = txt2img_graph(sampler=sampler, scheduler="karras", seed=11, steps=3, cfg=6.0, width=SIZE,
                             height=SIZE)
    assert np.array_equal(got, _pixels(engine.run(ksampler, files=files).images[0].png))
    assert np.abs(got - comfy_reference(pipe, sampler, "karras", seed=11)).max() <= TOLERANCE


def test_sampler_custom_advanced_with_karras_scheduler_and_cfg_guider(engine, files, pipe) -> None:
    graph = _graph_custom(sampler="dpmpp_2s_ancestral", sigmas_node={"class_type": "KarrasScheduler", "inputs": {
        "steps": 3, "sigma_max": 10.0, "sigma_min": 0.05, "rho": 5.0}})
    inputs = graph["3"]["inputs"]
    graph["22"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 4}}
    graph["23"] = {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0],
                                                         "negative": ["7", 0], "cfg": 5.0}}
    graph["3"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["22", 0], "guider": ["23", 0], "sampler": inputs["sampler"], "sigmas": inputs["sigmas"],
        "latent_image": inputs["latent_image"]}}
    got = _pixels(engine.run(graph, files=files).images[0].png)
    den = _denoiser(pipe, [NEGATIVE, PROMPT], _cfg(5.0))
    sigmas = load().sampling.get_sigmas_karras(3, 0.05, 10.0, rho=5.0)
    assert np.abs(got - _sample_reference(pipe, den, "dpmpp_2s_ancestral", sigmas, seed=4)).max() <= TOLERANCE


def test_sd_turbo_scheduler_basic_guider(engine, files, pipe) -> None:
    """SDTurboScheduler (steps 2: timesteps 999, 899) with BasicGuider (positive only)."""
    graph = _graph_custom(sampler="euler_ancestral", sigmas_node={"class_type": "SDTurboScheduler", "inputs": {
        "model": ["4", 0], "steps": 2, "denoise": 1.0}})
    inputs = graph["3"]["inputs"]
    graph["22"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 8}}
    graph["23"] = {"class_type": "BasicGuider", "inputs": {"model": ["4", 0], "conditioning": ["6", 0]}}
    graph["3"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["22", 0], "guider": ["23", 0], "sampler": inputs["sampler"], "sigmas": inputs["sigmas"],
        "latent_image": inputs["latent_image"]}}
    got = _pixels(engine.run(graph, files=files).images[0].png)
    den = _denoiser(pipe, [PROMPT], lambda cond: cond)
    sigmas = torch.cat([den.t_to_sigma(torch.tensor([999.0, 899.0])), torch.zeros(1)])
    assert np.abs(got - _sample_reference(pipe, den, "euler_ancestral", sigmas, seed=8)).max() <= TOLERANCE


@pytest.mark.parametrize("style", ["regular", "nested"])
def test_dual_cfg_guider_matches_comfy_formula(engine, files, pipe, style) -> None:
    graph = _graph_custom(sampler="euler", sigmas_node={"class_type": "BasicScheduler", "inputs": {
        "model": ["4", 0], "scheduler": "normal", "steps": 3, "denoise": 1.0}})
    inputs = graph["3"]["inputs"]
    graph["24"] = {"class_type": "CLIPTextEncode", "inputs": {"text": MIDDLE, "clip": ["4", 1]}}
    graph["22"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 6}}
    graph["23"] = {"class_type": "DualCFGGuider", "inputs": {
        "model": ["4", 0], "cond1": ["6", 0], "cond2": ["24", 0], "negative": ["7", 0], "cfg_conds": 3.0,
        "cfg_cond2_negative": 2.0, "style": style}}
    graph["3"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["22", 0], "guider": ["23", 0], "sampler": inputs["sampler"], "sigmas": inputs["sigmas"],
        "latent_image": inputs["latent_image"]}}
    got = _pixels(engine.run(graph, files=files).images[0].png)

    # ComfyUI's Guider_DualCFG on eps (linear in x0): regular = cfg(mid, neg, 2) + (pos - mid) · 3;
    # nested = neg + 2 · (cfg(pos, mid, 3) − neg)
    def combine(neg, mid, pos):
        if style == "regular":
            return neg + (mid - neg) * 2.0 + (pos - mid) * 3.0
        return neg + 2.0 * (mid + (pos - mid) * 3.0 - neg)

    den = _denoiser(pipe, [NEGATIVE, MIDDLE, PROMPT], combine)
    assert np.abs(got - _sample_reference(pipe, den, "euler", den.get_sigmas(3), seed=6)).max() <= TOLERANCE


def test_split_sigmas_two_stages_equal_one_run(engine, files) -> None:
    """The usual SplitSigmas graph: high sigmas with noise, then low sigmas with DisableNoise."""
    graph = _graph_custom(sampler="euler", sigmas_node={"class_type": "BasicScheduler", "inputs": {
        "model": ["4", 0], "scheduler": "normal", "steps": 4, "denoise": 1.0}})
    whole = _pixels(engine.run(graph, files=files).images[0].png)
    graph["25"] = {"class_type": "SplitSigmas", "inputs": {"sigmas": ["21", 0], "step": 2}}
    graph["3"]["inputs"]["sigmas"] = ["25", 0]
    graph["26"] = {"class_type": "DisableNoise", "inputs": {}}
    graph["27"] = {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0],
                                                         "negative": ["7", 0], "cfg": 6.0}}
    graph["28"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["26", 0], "guider": ["27", 0], "sampler": ["20", 0], "sigmas": ["25", 1],
        "latent_image": ["3", 0]}}
    graph["8"]["inputs"]["samples"] = ["28", 0]
    split = _pixels(engine.run(graph, files=files).images[0].png)
    assert np.abs(split - whole).max() <= 1


def test_sigma_tools_and_schedulers_match_comfy() -> None:
    kd = load().sampling
    sigmas = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.0])
    high, low = custom_sampling.split_sigmas(None, sigmas=sigmas, step=2)
    assert high.tolist() == pytest.approx([14.6, 7.0, 3.0]) and low.tolist() == pytest.approx([3.0, 1.0, 0.0])
    (flipped,) = custom_sampling.flip_sigmas(None, sigmas=sigmas)
    assert flipped.tolist() == pytest.approx([0.0001, 1.0, 3.0, 7.0, 14.6])
    (exp,) = custom_sampling.exponential_scheduler(None, steps=5, sigma_max=10.0, sigma_min=0.1)
    assert torch.allclose(exp, kd.get_sigmas_exponential(5, 0.1, 10.0))
    (karras,) = custom_sampling.karras_scheduler(None, steps=4, sigma_max=14.614642, sigma_min=0.0291675, rho=7.0)
    assert torch.allclose(karras, kd.get_sigmas_karras(4, 0.0291675, 14.614642))
    # AlignYourStepsScheduler: NVIDIA's 10-step SD1 levels as ComfyUI lists them; 5 steps interpolated in log
    (ays,) = custom_sampling.align_your_steps_scheduler(None, model_type="SD1", steps=10, denoise=1.0)
    assert ays[0] == pytest.approx(14.6146412293) and ays[-2] == pytest.approx(0.1515232662) and ays[-1] == 0
    (half,) = custom_sampling.align_your_steps_scheduler(None, model_type="SDXL", steps=4, denoise=0.5)
    levels = [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
              0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582]
    xs, ys = np.linspace(0, 1, 11), np.log(levels[::-1])
    expected = np.exp(np.interp(np.linspace(0, 1, 5), xs, ys))[::-1][-3:]
    assert half[:-1].tolist() == pytest.approx(list(expected[:-1]), rel=1e-5) and half[-1] == 0


def test_sdxl_turbo_template_runs(engine, files) -> None:
    """ComfyUI's SDXL Turbo template (SamplerCustom + KSamplerSelect + SDTurboScheduler), on the tiny SDXL."""
    graph = _graph_custom(sampler="euler_ancestral", cfg=1.0, sigmas_node={"class_type": "SDTurboScheduler",
                                                                            "inputs": {"model": ["4", 0],
                                                                                       "steps": 1,
                                                                                       "denoise": 1.0}})
    graph["4"]["inputs"]["ckpt_name"] = "sdxl.safetensors"
    graph["5"]["inputs"].update(width=64, height=64)
    graph["8"]["inputs"]["samples"] = ["3", 0]
    graph["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    result = engine.run(graph, files=files)
    assert len(result.images) == 1 and (result.images[0].width, result.images[0].height) == (64, 64)
    assert _pixels(result.images[0].png).std() > 1  # an image, not a flat field


# Model patches -------------------------------------------------------------------------------------------

def _patched_graph(patch: dict | None, *, sampler="euler", scheduler="normal", seed=5, cfg=6.0) -> dict:
    graph = txt2img_graph(sampler=sampler, scheduler=scheduler, seed=seed, steps=3, cfg=cfg, width=SIZE,
                          height=SIZE)
    if patch is not None:
        graph["30"] = {**patch, "inputs": {**patch["inputs"], "model": ["4", 0]}}
        graph["3"]["inputs"]["model"] = ["30", 0]
    return graph


def test_rescale_cfg_matches_comfy_formula(engine, files, pipe) -> None:
    graph = _patched_graph({"class_type": "RescaleCFG", "inputs": {"multiplier": 0.7}}, sampler="euler_ancestral",
                           cfg=15.0)
    got = _pixels(engine.run(graph, files=files).images[0].png)

    kd = load()
    den = kd.external.DiscreteEpsDDPMDenoiser(lambda x, t: None, pipe.scheduler.alphas_cumprod, quantize=True)
    model = _Guided(pipe, [NEGATIVE, PROMPT], lambda neg, pos: (neg, pos))

    def rescaled(x, sigma):
        # ComfyUI's RescaleCFG: guide and rescale the v-prediction equivalents, then back to x0
        s = sigma.reshape(-1, 1, 1, 1)
        c_in = 1 / (s ** 2 + 1) ** 0.5
        eps_neg, eps_pos = model(x * c_in, den.sigma_to_t(sigma), sigma)
        x_vp = x / (s ** 2 + 1)
        v_pos = (x_vp - (x - eps_pos * s)) * (s ** 2 + 1) ** 0.5 / s
        v_neg = (x_vp - (x - eps_neg * s)) * (s ** 2 + 1) ** 0.5 / s
        v_cfg = v_neg + 15.0 * (v_pos - v_neg)
        v_rescaled = v_cfg * (torch.std(v_pos, dim=(1, 2, 3), keepdim=True) / torch.std(v_cfg, dim=(1, 2, 3),
                                                                                      keepdim=True))
        v_final = 0.7 * v_rescaled + 0.3 * v_cfg
        return x_vp - v_final * s / (s ** 2 + 1) ** 0.5

    expected = _sample_reference(pipe, _Proxy(rescaled, den), "euler_ancestral", den.get_sigmas(3), seed=5)
    assert np.abs(got - expected).max() <= TOLERANCE
    plain = _pixels(engine.run(_patched_graph(None, sampler="euler_ancestral", cfg=15.0), files=files).images[0].png)
    assert np.abs(got - plain).max() > TOLERANCE


class _Proxy:
    """A denoiser callable with the sigma range of another (for _sample_reference)."""

    def __init__(self, fn, like) -> None:
        self.fn, self.sigma_max = fn, like.sigma_max

    def __call__(self, x, sigma, **kwargs):
        return self.fn(x, sigma)


@pytest.mark.parametrize("zsnr", [False, True])
def test_model_sampling_discrete_v_prediction_and_zsnr(engine, files, pipe, zsnr) -> None:
    """The tiny eps model read as v-prediction (optionally zero terminal SNR), as k-diffusion's V denoiser."""
    graph = _patched_graph({"class_type": "ModelSamplingDiscrete",
                            "inputs": {"sampling": "v_prediction", "zsnr": zsnr}}, scheduler="karras")
    got = _pixels(engine.run(graph, files=files).images[0].png)
    alphas = pipe.scheduler.alphas_cumprod.double()
    if zsnr:  # Lin et al.: shift and scale sqrt(alphas_cumprod) to end at 0 (ComfyUI keeps it just above)
        root = alphas.sqrt()
        root = (root - root[-1]) * root[0] / (root[0] - root[-1])
        alphas = root ** 2
        alphas[-1] = 4.8973451890853435e-08
    den = _denoiser(pipe, [NEGATIVE, PROMPT], _cfg(6.0), alphas_cumprod=alphas.float(), v=True)
    sigmas = load().sampling.get_sigmas_karras(3, float(den.sigma_min), float(den.sigma_max))
    assert np.abs(got - _sample_reference(pipe, den, "euler", sigmas, seed=5)).max() <= TOLERANCE


def test_model_sampling_discrete_lcm(engine, files, pipe) -> None:
    """LCM: 50 of the 1000 timesteps, LCM's boundary scalings on the estimate, the lcm sampler."""
    graph = _patched_graph({"class_type": "ModelSamplingDiscrete", "inputs": {"sampling": "lcm", "zsnr": False}},
                           sampler="lcm", scheduler="sgm_uniform")
    got = _pixels(engine.run(graph, files=files).images[0].png)
    kd = load()
    kept = torch.arange(50) * 20 + 19
    alphas = pipe.scheduler.alphas_cumprod
    model = _Guided(pipe, [NEGATIVE, PROMPT], _cfg(6.0))
    den = kd.external.DiscreteEpsDDPMDenoiser(lambda x, t: None, alphas[kept], quantize=True)

    def lcm(x, sigma):
        t = den.sigma_to_t(sigma) * 20 + 19
        s = sigma.reshape(-1, 1, 1, 1)
        x0 = x - model(x / (s ** 2 + 1) ** 0.5, t, sigma) * s
        scaled = t.reshape(-1, 1, 1, 1) * 10.0
        return scaled / (scaled ** 2 + 0.25) ** 0.5 * x0 + 0.25 / (scaled ** 2 + 0.25) * x

    # ComfyUI's sgm_uniform on the LCM timesteps: linspace(999, 19, steps + 1)[:-1]
    ts = torch.linspace(999, 19, 4)[:-1]
    sigmas = torch.cat([den.t_to_sigma((ts - 19) / 20), torch.zeros(1)])
    expected = _sample_reference(pipe, _Proxy(lcm, den), "lcm", sigmas, seed=5)
    assert np.abs(got - expected).max() <= TOLERANCE


def _freeu_reference(unet, x, t, embeds, *, b, s, version):
    """The UNet with FreeU by ComfyUI's channel rule, the transform being diffusers' own (fourier_filter)."""
    base = unet.config.block_out_channels[0]
    channels = list(reversed(unet.config.block_out_channels))
    handles = []
    for i, block in enumerate(unet.up_blocks):
        for j, resnet in enumerate(block.resnets):
            backbone = channels[max(i - 1, 0)] if j == 0 else channels[i]
            factors = {base * 4: (b[0], s[0]), base * 2: (b[1], s[1])}.get(backbone)
            if factors is None:
                continue

            def hook(module, args, kwargs, backbone=backbone, factors=factors):
                h, skip = args[0][:, :backbone].clone(), args[0][:, backbone:]
                half = h.shape[1] // 2
                if version == 1:
                    h[:, :half] *= factors[0]
                else:
                    mean = h.mean(1, keepdim=True)
                    low = mean.amin(dim=(2, 3), keepdim=True)
                    high = mean.amax(dim=(2, 3), keepdim=True)
                    h[:, :half] *= (factors[0] - 1) * (mean - low) / (high - low) + 1
                skip = fourier_filter(skip, threshold=1, scale=factors[1])
                return (torch.cat([h, skip], dim=1), *args[1:]), kwargs

            handles.append(resnet.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        return unet(x, t, encoder_hidden_states=embeds).sample
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("version", [1, 2])
def test_free_u_on_the_unet(pipe, version) -> None:
    unet = pipe.unet
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500.0, 500.0])
    embeds = torch.randn(2, 77, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    patch = FreeUPatch(1.3, 1.6, 0.7, 0.4, version=version)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=embeds).sample
        with unet_patched(unet, [patch]):
            got = unet(x, t, encoder_hidden_states=embeds).sample
        expected = _freeu_reference(unet, x, t, embeds, b=(1.3, 1.6), s=(0.7, 0.4), version=version)
        after = unet(x, t, encoder_hidden_states=embeds).sample
    assert torch.allclose(got, expected, atol=1e-5)
    assert (got - plain).abs().max() > 1e-3  # the patch does something on this UNet …
    assert torch.equal(after, plain)  # … and is gone afterwards


def test_free_u_nodes_change_the_image_and_identity_factors_do_not(engine, files) -> None:
    plain = _pixels(engine.run(_patched_graph(None), files=files).images[0].png)
    patched = _pixels(engine.run(_patched_graph({"class_type": "FreeU_V2", "inputs": {
        "b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}}), files=files).images[0].png)
    identity = _pixels(engine.run(_patched_graph({"class_type": "FreeU", "inputs": {
        "b1": 1.0, "b2": 1.0, "s1": 1.0, "s2": 1.0}}), files=files).images[0].png)
    assert np.abs(patched - plain).max() > TOLERANCE
    assert np.abs(identity - plain).max() <= 1


def test_work_estimate_follows_the_sigmas_to_their_scheduler() -> None:
    from sdfleet.engine.work_estimate import estimate_work

    graph = _graph_custom(sampler="euler", sigmas_node={"class_type": "BasicScheduler", "inputs": {
        "model": ["4", 0], "scheduler": "normal", "steps": 30, "denoise": 1.0}})
    graph["25"] = {"class_type": "SplitSigmas", "inputs": {"sigmas": ["21", 0], "step": 2}}
    graph["3"]["inputs"]["sigmas"] = ["25", 0]
    work = estimate_work(graph, image_size=lambda name: (64, 64))
    sampler = next(n for n in work.nodes if n.class_type == "SamplerCustom")
    assert sampler.steps == 30
