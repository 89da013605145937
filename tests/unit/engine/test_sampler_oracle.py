"""Every sampler × scheduler: the engine's image equals k-diffusion's, driven as ComfyUI and A1111 drive it.

The oracle is the `k-diffusion` package's own sampling functions (and its `DiscreteEpsDDPMDenoiser`, the
wrapper A1111 uses) around the tiny UNet, with the sigma schedules, initial noise and per-step noise the
reference computes — written here from ComfyUI's and A1111's definitions, independently of the engine.
Samplers k-diffusion lacks (ComfyUI's lcm and ddpm, A1111's CompVis DDIM) are the reference's formulas.
"""

from __future__ import annotations

import inspect
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from scipy import stats

from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles
from sdfleet.engine.image_admission import read_png_text
from sdfleet.engine.nodes.sampling import A1111_SAMPLER_NAMES, A1111_SCHEDULER_NAMES
from sdfleet.engine.samplers import sampler_names, scheduler_names
from tests.unit.engine.conftest import txt2img_graph
from tests.unit.engine.kdiffusion_oracle import load

TOLERANCE = 2  # out of 255
#: Measured max differences, written as docs/samplers.md's tables when SDFLEET_SAMPLER_TABLE names a file.
MEASURED: dict[tuple[str, str, str], int] = {}
SIZE, STEPS, CFG = 32, 3, 6.0
PROMPT, NEGATIVE = "a red cat", "blurry"
AYS_SD1 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]


@pytest.fixture(scope="module", autouse=True)
def _table():
    yield
    target = os.environ.get("SDFLEET_SAMPLER_TABLE")
    if target and MEASURED:
        Path(target).write_text(_markdown(MEASURED))


def _markdown(measured: dict[tuple[str, str, str], int]) -> str:
    lines = []
    for kind, names in (("graph", scheduler_names()), ("a1111", A1111_SCHEDULER_NAMES)):
        rows = sorted({s for k, s, _ in measured if k == kind}, key=lambda s: [*sampler_names(), s].index(s))
        lines += [f"| {kind} sampler | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for sampler in rows:
            cells = [str(measured[(kind, sampler, n)]) if (kind, sampler, n) in measured else "·" for n in names]
            lines.append(f"| `{sampler}` | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _check(kind: str, sampler: str, scheduler: str, got: np.ndarray, expected: np.ndarray) -> None:
    diff = int(np.abs(got - expected).max())
    MEASURED[(kind, sampler, scheduler)] = max(diff, MEASURED.get((kind, sampler, scheduler), 0))
    assert diff <= TOLERANCE


# Reference pieces ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipe(model_dir) -> StableDiffusionPipeline:
    return StableDiffusionPipeline.from_pretrained(model_dir / "sd1", safety_checker=None)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


class _CfgEps(torch.nn.Module):
    """The tiny UNet's eps with classifier-free guidance: what k-diffusion's denoiser wrappers call."""

    def __init__(self, pipe: StableDiffusionPipeline, cfg: float) -> None:
        super().__init__()
        self.unet = pipe.unet
        cond, uncond = pipe.encode_prompt(PROMPT, torch.device("cpu"), 1, True, NEGATIVE)
        self.cond, self.uncond, self.cfg = cond, uncond, cfg
        self.calls = 0

    def forward(self, x, t):
        batch = x.shape[0]
        context = torch.cat([self.uncond.expand(batch, -1, -1), self.cond.expand(batch, -1, -1)])
        t = torch.as_tensor(t).reshape(-1).expand(batch)
        eps = self.unet(torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=context).sample
        uncond, cond = eps.chunk(2)
        self.calls += 1
        return uncond + (cond - uncond) * self.cfg


_EPS: dict[int, _CfgEps] = {}


def _denoiser(pipe, *, quantize: bool):
    """ComfyUI's model wrapper rounds to the nearest timestep; A1111's CompVisDenoiser interpolates."""
    if id(pipe) not in _EPS:
        _EPS.clear()
        _EPS[id(pipe)] = _CfgEps(pipe, CFG)
    return load().external.DiscreteEpsDDPMDenoiser(_EPS[id(pipe)], pipe.scheduler.alphas_cumprod, quantize=quantize)


def _decode(pipe, latents: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return (images * 255).round().astype(int)


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _t_to_sigma(den, t) -> torch.Tensor:
    return den.t_to_sigma(torch.as_tensor(t, dtype=torch.float32))


def _zero(values) -> torch.Tensor:
    return torch.cat([torch.as_tensor(values, dtype=torch.float32).reshape(-1), torch.zeros(1)])


def _comfy_beta(den, n):
    ts = np.rint(stats.beta.ppf(1 - np.linspace(0, 1, n, endpoint=False), 0.6, 0.6) * 999)
    sigmas, last = [], -1
    for t in ts:
        if t != last:
            sigmas.append(float(den.sigmas[int(t)]))
        last = t
    return _zero(sigmas)


def _linear_quadratic(den, n, threshold=0.025):
    linear_steps = n // 2
    linear = [i * threshold / linear_steps for i in range(linear_steps)]
    diff = linear_steps - threshold * n
    quad_steps = n - linear_steps
    a = diff / (linear_steps * quad_steps ** 2)
    b = threshold / linear_steps - 2 * diff / (quad_steps ** 2)
    c = a * linear_steps ** 2
    schedule = linear + [a * i ** 2 + b * i + c for i in range(linear_steps, n)] + [1.0]
    return torch.tensor([1.0 - s for s in schedule]) * den.sigma_max


COMFY_SCHEDULES = {  # ComfyUI's comfy/samplers.py SCHEDULER_HANDLERS, from its definitions
    "simple": lambda den, n: _zero([float(den.sigmas[-(1 + int(i * 1000 / n))]) for i in range(n)]),
    "sgm_uniform": lambda den, n: _zero(_t_to_sigma(den, torch.linspace(999, 0, n + 1)[:-1])),
    "karras": lambda den, n: load().sampling.get_sigmas_karras(n, float(den.sigma_min), float(den.sigma_max)),
    "exponential": lambda den, n: load().sampling.get_sigmas_exponential(n, float(den.sigma_min),
                                                                         float(den.sigma_max)),
    "ddim_uniform": lambda den, n: _zero(den.sigmas[torch.arange(1, 1000, 1000 // n)].flip(0)),
    "beta": _comfy_beta,
    "normal": lambda den, n: den.get_sigmas(n),
    "linear_quadratic": _linear_quadratic,
    "kl_optimal": lambda den, n: _zero(torch.tan(
        torch.arange(n) / (n - 1) * math.atan(den.sigma_min) + (1 - torch.arange(n) / (n - 1))
        * math.atan(den.sigma_max))),
}


def _loglinear(levels, count):
    xs, ys = np.linspace(0, 1, len(levels)), np.log(levels[::-1])
    return np.exp(np.interp(np.linspace(0, 1, count), xs, ys))[::-1].copy()


A1111_SCHEDULES = {  # A1111 1.10 modules/sd_schedulers.py, from its definitions
    "uniform": lambda den, n: den.get_sigmas(n),
    "karras": lambda den, n: load().sampling.get_sigmas_karras(n, float(den.sigma_min), float(den.sigma_max)),
    "exponential": lambda den, n: load().sampling.get_sigmas_exponential(n, float(den.sigma_min),
                                                                         float(den.sigma_max)),
    "polyexponential": lambda den, n: load().sampling.get_sigmas_polyexponential(n, float(den.sigma_min),
                                                                                 float(den.sigma_max)),
    "sgm_uniform": lambda den, n: _zero(_t_to_sigma(den, torch.linspace(999, 0, n + 1)[:-1])),
    "kl_optimal": lambda den, n: torch.tan(torch.arange(n + 1) / n * math.atan(den.sigma_min)
                                           + (1 - torch.arange(n + 1) / n) * math.atan(den.sigma_max)),
    "align_your_steps": lambda den, n: _zero(_loglinear(AYS_SD1, n).copy()),
    "simple": COMFY_SCHEDULES["simple"],
    "normal": lambda den, n: den.get_sigmas(n),
    "ddim": lambda den, n: _zero(den.sigmas[torch.arange(1, 1000, 1000 // n)].flip(0)),
    "beta": lambda den, n: _zero([float(den.sigma_min) + q * float(den.sigma_max - den.sigma_min)
                                  for q in stats.beta.ppf(1 - np.linspace(0, 1, n), 0.6, 0.6)]),
}


def _discarded(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas[:-2], sigmas[-1:]])


def _lcm(model, x, sigmas, noise_sampler):
    """ComfyUI's sample_lcm: jump to the estimate, re-noise to the next sigma."""
    for i in range(len(sigmas) - 1):
        x = model(x, sigmas[i] * x.new_ones([x.shape[0]]))
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
    return x


def _ddpm(model, x, sigmas, noise_sampler):
    """ComfyUI's sample_ddpm: the DDPM posterior mean plus noise, in variance-preserving coordinates."""
    for i in range(len(sigmas) - 1):
        s, s_prev = sigmas[i], sigmas[i + 1]
        denoised = model(x, s * x.new_ones([x.shape[0]]))
        eps = (x - denoised) / s
        a_cum, a_prev = 1 / (s * s + 1), 1 / (s_prev * s_prev + 1)
        alpha = a_cum / a_prev
        mu = (1.0 / alpha).sqrt() * (x / (1.0 + s ** 2).sqrt() - (1 - alpha) * eps / (1 - a_cum).sqrt())
        if s_prev > 0:
            mu = mu + ((1 - alpha) * (1 - a_prev) / (1 - a_cum)).sqrt() * noise_sampler(s, s_prev)
            mu = mu * (1.0 + s_prev ** 2).sqrt()
        x = mu
    return x


def _run_k_diffusion(name: str, model, x, sigmas, noise_sampler, *, eta: float, comfy: bool):
    """Call k-diffusion's sampler of an engine sampler name, with the arguments the reference passes."""
    kd = load().sampling
    if name == "lcm":
        return _lcm(model, x, sigmas, noise_sampler)
    if name == "ddpm":
        return _ddpm(model, x, sigmas, noise_sampler)
    if name in ("dpm_fast", "dpm_adaptive"):
        sigma_min = sigmas[-2] if sigmas[-1] == 0 else sigmas[-1]
        if name == "dpm_fast":
            return kd.sample_dpm_fast(model, x, sigma_min, sigmas[0], len(sigmas) - 1, disable=True, eta=eta,
                                      noise_sampler=noise_sampler)
        return kd.sample_dpm_adaptive(model, x, sigma_min, sigmas[0], disable=True, eta=eta,
                                      noise_sampler=noise_sampler)
    if name == "lms" and comfy and sigmas[-1] == 0:
        # ComfyUI's sample_lms jumps to the estimate on the step to 0 instead of extrapolating
        x = kd.sample_lms(model, x, sigmas[:-1], disable=True)
        return model(x, sigmas[-2] * x.new_ones([x.shape[0]]))
    function = {"ddim": "sample_euler", "dpmpp_2m_sde_heun": "sample_dpmpp_2m_sde"}.get(name, f"sample_{name}")
    kwargs = {"solver_type": "heun"} if name == "dpmpp_2m_sde_heun" else {}
    sampler = getattr(kd, function)
    params = inspect.signature(sampler).parameters
    if "eta" in params:
        kwargs["eta"] = eta
    if "noise_sampler" in params:
        kwargs["noise_sampler"] = noise_sampler
    return sampler(model, x, sigmas, disable=True, **kwargs)


BROWNIAN = {"dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"}


def comfy_reference(pipe, sampler: str, scheduler: str, *, seed: int, steps: int = STEPS,
                    latent: torch.Tensor | None = None, denoise: float = 1.0, batch: int = 1) -> np.ndarray:
    """ComfyUI's KSampler: its schedule, prepare_noise, noise scaling and per-step noise, with k-diffusion."""
    kd = load().sampling
    den = _denoiser(pipe, quantize=True)
    discard = sampler in ("dpm_2", "dpm_2_ancestral")
    total = steps if denoise >= 0.9999 else int(steps / denoise)
    sigmas = COMFY_SCHEDULES[scheduler](den, total + (1 if discard else 0)).float()
    sigmas = (_discarded(sigmas) if discard else sigmas)[-(steps + 1):]
    shape = (batch, 4, SIZE // 8, SIZE // 8)
    latent = torch.zeros(shape) if latent is None else latent
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    top = math.isclose(float(sigmas[0]), float(den.sigma_max), rel_tol=1e-5)
    x = noise * (float((1 + sigmas[0] ** 2) ** 0.5) if top else sigmas[0]) + latent
    if sampler in BROWNIAN:
        noise_sampler = kd.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed)
    else:
        generator = torch.Generator().manual_seed(seed + 1)
        noise_sampler = lambda s, s_next: torch.randn(shape, generator=generator)  # noqa: E731
    eta = 0.0 if sampler in ("dpm_fast", "dpm_adaptive") else 1.0
    with torch.no_grad():
        samples = _run_k_diffusion(sampler, den, x, sigmas, noise_sampler, eta=eta, comfy=True)
    return _decode(pipe, samples)


# ComfyUI graphs ----------------------------------------------------------------------------------------

def _ends(scheduler: str) -> tuple[float, float]:
    from sdfleet.engine import schedules
    from sdfleet.engine.model_sampling import ModelSampling
    from sdfleet.engine.tiny import _SCHEDULER_BASE

    sigmas = schedules.comfy_sigmas(ModelSampling.from_config(_SCHEDULER_BASE), scheduler, STEPS)
    return round(float(sigmas[0]), 4), round(float(sigmas[sigmas > 0].min()), 4)


def _pairs() -> list[tuple[str, str]]:
    pairs = [(sampler, scheduler) for sampler in sampler_names() for scheduler in scheduler_names()]
    # dpm_adaptive reads only a schedule's first and last non-zero sigma, and takes ~30 model calls a run:
    # one scheduler per distinct pair of ends covers it (the others give the very same run).
    adaptive = list({_ends(name): name for name in reversed(scheduler_names())}.values())
    return [(a, b) for a, b in pairs if a != "dpm_adaptive" or b in adaptive]


@pytest.mark.parametrize(("sampler", "scheduler"), _pairs())
def test_graph_sampler_matches_k_diffusion(engine, files: DictModelFiles, pipe, sampler, scheduler) -> None:
    graph = txt2img_graph(sampler=sampler, scheduler=scheduler, seed=11, steps=STEPS, cfg=CFG, width=SIZE,
                          height=SIZE)
    got = _pixels(engine.run(graph, files=files).images[0].png)
    _check("graph", sampler, scheduler, got, comfy_reference(pipe, sampler, scheduler, seed=11)[0])


def test_seed_changes_the_image(engine, files: DictModelFiles, pipe) -> None:
    """The comparison above can fail: another seed (or sampler) gives a visibly different image."""
    expected = comfy_reference(pipe, "euler_ancestral", "normal", seed=11)[0]
    for sampler, seed in (("euler_ancestral", 12), ("euler", 11)):
        graph = txt2img_graph(sampler=sampler, scheduler="normal", seed=seed, steps=STEPS, cfg=CFG, width=SIZE,
                              height=SIZE)
        assert np.abs(_pixels(engine.run(graph, files=files).images[0].png) - expected).max() > 10


@pytest.fixture()
def source_latent(files: DictModelFiles, pipe, tmp_path) -> torch.Tensor:
    """An input image in `files` (as in.png) and its latent, encoded by diffusers' VAE."""
    pixels = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    files.images["in.png"] = tmp_path / "in.png"
    x = torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        return pipe.vae.encode(x * 2 - 1).latent_dist.mode() * pipe.vae.config.scaling_factor


def _img2img_graph(**sampler_inputs) -> dict:
    graph = txt2img_graph(steps=STEPS, cfg=CFG, width=SIZE, height=SIZE)
    del graph["5"]
    graph["10"] = {"class_type": "LoadImage", "inputs": {"image": "in.png"}}
    graph["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    graph["3"]["inputs"].update(latent_image=["11", 0], **sampler_inputs)
    return graph


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2m_sde"])
def test_graph_img2img_denoise_matches(engine, files, pipe, source_latent, sampler) -> None:
    """KSampler denoise 0.6 over 3 steps: the last 3 sigmas of an int(3 / 0.6) = 5-step schedule."""
    graph = _img2img_graph(sampler_name=sampler, scheduler="karras", seed=5, denoise=0.6)
    got = _pixels(engine.run(graph, files=files).images[0].png)
    expected = comfy_reference(pipe, sampler, "karras", seed=5, latent=source_latent, denoise=0.6)[0]
    assert np.abs(got - expected).max() <= TOLERANCE


@pytest.mark.parametrize(("start", "end", "add_noise", "leftover"), [(0, 2, "enable", "enable"),
                                                                     (1, 10000, "disable", "disable"),
                                                                     (1, 3, "enable", "disable")])
def test_ksampler_advanced_step_range_matches(engine, files, pipe, source_latent, start, end, add_noise,
                                              leftover) -> None:
    kd = load().sampling
    graph = _img2img_graph(seed=9, sampler_name="euler_ancestral", scheduler="normal", denoise=1.0)
    inputs = graph["3"]["inputs"]
    inputs["noise_seed"] = inputs.pop("seed")
    del inputs["denoise"]
    graph["3"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **inputs, "steps": 4, "add_noise": add_noise, "start_at_step": start, "end_at_step": end,
        "return_with_leftover_noise": leftover}}
    got = _pixels(engine.run(graph, files=files).images[0].png)

    den = _denoiser(pipe, quantize=True)
    sigmas = den.get_sigmas(4)
    if end < len(sigmas) - 1:
        sigmas = sigmas[:end + 1].clone()
        if leftover == "disable":
            sigmas[-1] = 0
    sigmas = sigmas[start:]
    noise = torch.randn(source_latent.shape, generator=torch.Generator().manual_seed(9))
    noise = noise if add_noise == "enable" else torch.zeros_like(noise)
    top = math.isclose(float(sigmas[0]), float(den.sigma_max), rel_tol=1e-5)
    x = noise * (float((1 + sigmas[0] ** 2) ** 0.5) if top else sigmas[0]) + source_latent
    generator = torch.Generator().manual_seed(10)
    with torch.no_grad():
        samples = kd.sample_euler_ancestral(den, x, sigmas, disable=True,
                                            noise_sampler=lambda a, b: torch.randn(x.shape, generator=generator))
    assert np.abs(got - _decode(pipe, samples)[0]).max() <= TOLERANCE


def test_noise_mask_matches_comfy_inpaint_blend(engine, files, pipe, source_latent) -> None:
    """SetLatentNoiseMask: ComfyUI's KSamplerX0Inpaint keeps the unmasked latent, re-noised to each sigma."""
    kd = load().sampling
    mask = torch.zeros(1, SIZE, SIZE)
    mask[:, :, SIZE // 2:] = 1.0
    graph = _img2img_graph(seed=4, sampler_name="euler", scheduler="normal", denoise=0.8)
    graph["12"] = {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "red"}}
    Image.fromarray((mask[0].numpy() * 255).astype(np.uint8)).save(files.images["in.png"].parent / "mask.png")
    files.images["mask.png"] = files.images["in.png"].parent / "mask.png"
    graph["13"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["11", 0], "mask": ["12", 0]}}
    graph["3"]["inputs"]["latent_image"] = ["13", 0]
    got = _pixels(engine.run(graph, files=files).images[0].png)

    den = _denoiser(pipe, quantize=True)
    sigmas = den.get_sigmas(int(STEPS / 0.8))[-(STEPS + 1):]
    noise = torch.randn(source_latent.shape, generator=torch.Generator().manual_seed(4))
    latent_mask = torch.nn.functional.interpolate(mask[None], size=source_latent.shape[-2:], mode="bilinear")
    latent_mask = latent_mask.expand(-1, 4, -1, -1)

    def model(x, sigma):
        x = x * latent_mask + (source_latent + noise * sigma.reshape(-1, 1, 1, 1)) * (1 - latent_mask)
        return den(x, sigma) * latent_mask + source_latent * (1 - latent_mask)

    with torch.no_grad():
        samples = kd.sample_euler(model, noise * sigmas[0] + source_latent, sigmas, disable=True)
    assert np.abs(got - _decode(pipe, samples)[0]).max() <= TOLERANCE


@pytest.fixture(scope="module")
def sd2_dir(tmp_path_factory):
    from sdfleet.engine.tiny import tiny_sd2_pipeline

    path = tmp_path_factory.mktemp("sd2") / "sd2"
    tiny_sd2_pipeline(seed=1).save_pretrained(path)
    return path


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2m_sde"])
def test_v_prediction_model_matches(engine, files, sd2_dir, sampler) -> None:
    """SD 2.x (v-prediction): the same samplers through k-diffusion's DiscreteVDDPMDenoiser."""
    from sdfleet.engine.files import ModelFile

    files.add_model("checkpoints", "sd2.safetensors", ModelFile(sd2_dir, "sd2-tiny-" + sampler))
    graph = txt2img_graph(ckpt="sd2.safetensors", sampler=sampler, scheduler="karras", seed=2, steps=STEPS,
                          cfg=CFG, width=SIZE, height=SIZE)
    got = _pixels(engine.run(graph, files=files).images[0].png)

    kd = load()
    sd2 = StableDiffusionPipeline.from_pretrained(sd2_dir, safety_checker=None)
    den = kd.external.DiscreteVDDPMDenoiser(_CfgEps(sd2, CFG), sd2.scheduler.alphas_cumprod, quantize=True)
    sigmas = kd.sampling.get_sigmas_karras(STEPS, float(den.sigma_min), float(den.sigma_max))
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(2))
    x = noise * float((1 + sigmas[0] ** 2) ** 0.5)
    if sampler in BROWNIAN:
        noise_sampler = kd.sampling.BrownianTreeNoiseSampler(x, sigmas[-2], sigmas[0], seed=2)
    else:
        generator = torch.Generator().manual_seed(3)
        noise_sampler = lambda a, b: torch.randn(x.shape, generator=generator)  # noqa: E731
    with torch.no_grad():
        samples = _run_k_diffusion(sampler, den, x, sigmas, noise_sampler, eta=1.0, comfy=True)
    assert np.abs(got - _decode(sd2, samples)[0]).max() <= TOLERANCE


# A1111 -------------------------------------------------------------------------------------------------

def a1111_initial_noise(seeds, *, shape, subseeds=(), strength=0.0, resize=(0, 0)):
    """A1111 1.10 modules/rng.py ImageRNG.first(), and the per-image generators it leaves behind."""
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    noise_shape = (shape[0], resize[0] // 8, resize[1] // 8) if resize[0] > 0 and resize[1] > 0 else shape
    images = []
    for i, seed in enumerate(seeds):
        sub = torch.randn(noise_shape, generator=torch.Generator().manual_seed(subseeds[i])) if strength else None
        if noise_shape != shape:
            noise = torch.randn(noise_shape, generator=torch.Generator().manual_seed(seed))
        else:
            noise = torch.randn(shape, generator=generators[i])
        if sub is not None:  # A1111's slerp, normalizing along dim 1
            low, high = noise / torch.norm(noise, dim=1, keepdim=True), sub / torch.norm(sub, dim=1, keepdim=True)
            dot = (low * high).sum(1)
            omega = torch.acos(dot)
            noise = (torch.sin((1 - strength) * omega) / torch.sin(omega)).unsqueeze(1) * noise \
                + (torch.sin(strength * omega) / torch.sin(omega)).unsqueeze(1) * sub
        if noise_shape != shape:
            full = torch.randn(shape, generator=generators[i])
            dx, dy = (shape[2] - noise_shape[2]) // 2, (shape[1] - noise_shape[1]) // 2
            w = noise_shape[2] if dx >= 0 else noise_shape[2] + 2 * dx
            h = noise_shape[1] if dy >= 0 else noise_shape[1] + 2 * dy
            full[:, max(dy, 0):max(dy, 0) + h, max(dx, 0):max(dx, 0) + w] = \
                noise[:, max(-dy, 0):max(-dy, 0) + h, max(-dx, 0):max(-dx, 0) + w]
            noise = full
        images.append(noise)
    return torch.stack(images), generators


def a1111_reference(pipe, sampler: str, scheduler: str, *, seeds, steps: int = STEPS, latent=None,
                    denoise: float = 1.0, **variation) -> np.ndarray:
    """A1111's KDiffusionSampler.sample / sample_img2img (or its CompVis DDIM) with k-diffusion."""
    kd = load().sampling
    shape = (4, SIZE // 8, SIZE // 8)
    noise, generators = a1111_initial_noise(seeds, shape=shape, **variation)
    latent = torch.zeros_like(noise) if latent is None else latent.expand_as(noise)
    if sampler == "ddim":
        return _decode(pipe, a1111_ddim(pipe, noise, steps=steps, latent=latent, denoise=denoise))
    den = _denoiser(pipe, quantize=False)
    discard = sampler in ("dpm_2", "dpm_2_ancestral", "dpmpp_3m_sde")
    sigmas = A1111_SCHEDULES[scheduler](den, steps + (1 if discard else 0)).float()
    sigmas = _discarded(sigmas) if discard else sigmas
    t_enc = int(min(denoise, 0.999) * steps)
    schedule = sigmas[steps - t_enc - 1:]
    x = latent + noise * schedule[0]
    if sampler in BROWNIAN:
        noise_sampler = kd.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=list(seeds))
    else:
        noise_sampler = lambda a, b: torch.stack([torch.randn(shape, generator=g) for g in generators])  # noqa: E731
    if sampler in ("dpm_fast", "dpm_adaptive") and denoise >= 1:
        schedule = schedule.clone()
        schedule[0], schedule[-2] = den.sigma_max, den.sigma_min
    with torch.no_grad():
        samples = _run_k_diffusion(sampler, den, x, schedule, noise_sampler, eta=1.0, comfy=False)
    return _decode(pipe, samples)


def a1111_ddim(pipe, noise, *, steps, latent, denoise):
    """A1111 1.10 sd_samplers_timesteps_impl.ddim (eta 0) on CompVis timesteps, in VP space.

    img2img (CompVisSampler.sample_img2img) noises to timesteps[t_enc] and samples timesteps[:t_enc].
    """
    eps_model = _EPS.get(id(pipe)) or _denoiser(pipe, quantize=True).inner_model
    alphas = pipe.scheduler.alphas_cumprod
    timesteps = torch.clip(torch.arange(0, 1000, 1000 // steps) + 1, 0, 999)
    x = noise
    if denoise < 1.0:
        t_enc = int(min(denoise, 0.999) * steps)
        a = alphas[timesteps[t_enc]]
        x = latent * a.sqrt() + noise * (1 - a).sqrt()
        timesteps = timesteps[:t_enc]
    with torch.no_grad():
        for i in range(len(timesteps) - 1):
            index = len(timesteps) - 1 - i
            e_t = eps_model(x, torch.tensor([float(timesteps[index])]))
            a_t, a_prev = alphas[timesteps[index]], alphas[timesteps[index - 1]].double()
            pred_x0 = (x - (1 - a_t).sqrt() * e_t) / a_t.sqrt()
            x = (a_prev.sqrt() * pred_x0 + (1.0 - a_prev).sqrt() * e_t).float()
    return x


def a1111_graph(sampler: str, scheduler: str, *, seed: int, batch: int = 2, **inputs) -> dict:
    graph = txt2img_graph(steps=STEPS, cfg=CFG, width=SIZE, height=SIZE, batch=batch)
    graph["3"] = {"class_type": "KSamplerA1111", "inputs": {
        "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "seed": seed,
        "subseed": 0, "subseed_strength": 0.0, "seed_resize_from_h": 0, "seed_resize_from_w": 0,
        "steps": STEPS, "cfg": CFG, "sampler_name": sampler, "scheduler": scheduler, "denoise": 1.0, "eta": 1.0,
        "s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0, **inputs}}
    return graph


def _a1111_cases() -> list[tuple[str, str]]:
    """Every A1111 sampler with its "Automatic" schedule; every schedule with an ancestral and an SDE sampler."""
    from sdfleet.engine.sampler_names import A1111_SAMPLERS

    cases = [(s.engine, s.automatic_scheduler) for s in A1111_SAMPLERS.values()]
    cases += [(sampler, scheduler) for scheduler in A1111_SCHEDULER_NAMES
              for sampler in ("euler_ancestral", "dpmpp_2m_sde")]
    return list(dict.fromkeys(cases))


@pytest.mark.parametrize(("sampler", "scheduler"), _a1111_cases())
def test_a1111_sampler_matches_k_diffusion(engine, files, pipe, sampler, scheduler) -> None:
    """A batch of two: image i has seed + i, its own noise stream (or Brownian tree) and the A1111 schedule."""
    assert sampler in A1111_SAMPLER_NAMES
    result = engine.run(a1111_graph(sampler, scheduler, seed=21), files=files)
    expected = a1111_reference(pipe, sampler, scheduler, seeds=(21, 22))
    assert [image.seed for image in result.images] == [21, 22]
    for image, reference in zip(result.images, expected, strict=True):
        _check("a1111", sampler, scheduler, _pixels(image.png), reference)


def test_a1111_variation_seed_and_seed_resize(engine, files, pipe) -> None:
    variation = {"subseed": 100, "subseed_strength": 0.3, "seed_resize_from_h": 48, "seed_resize_from_w": 16}
    result = engine.run(a1111_graph("euler_ancestral", "uniform", seed=7, **variation), files=files)
    expected = a1111_reference(pipe, "euler_ancestral", "uniform", seeds=(7, 7), subseeds=(100, 101),
                               strength=0.3, resize=(48, 16))
    for image, reference in zip(result.images, expected, strict=True):
        assert np.abs(_pixels(image.png) - reference).max() <= TOLERANCE
    info = read_png_text(result.images[1].png)["parameters"]
    assert "Seed: 7," in info and "Variation seed: 101" in info and "Seed resize from: 16x48" in info


@pytest.mark.parametrize(("sampler", "expected_steps"), [("dpmpp_2m", 3), ("ddim", 1)])
def test_a1111_img2img_runs_int_steps_times_strength(engine, files, pipe, source_latent, sampler,
                                                     expected_steps) -> None:
    """steps 3, strength 0.7: t_enc = int(3 × 0.7) = 2 on the 3-step schedule, not ComfyUI's int(3 / 0.7).

    A1111 then samples sigmas[steps - t_enc - 1:] (t_enc + 1 steps); its DDIM t_enc - 1 steps.
    """
    graph = _img2img_graph()
    graph["3"] = a1111_graph(sampler, "karras", seed=3, batch=1)["3"]
    graph["3"]["inputs"].update(latent_image=["11", 0], denoise=0.7)
    calls = []
    result = engine.run(graph, files=files, on_event=lambda e: calls.append(e) if type(e).__name__ == "Progress"
                        else None)
    assert calls[-1].max == expected_steps
    expected = a1111_reference(pipe, sampler, "karras", seeds=(3,), latent=source_latent, denoise=0.7)[0]
    assert np.abs(_pixels(result.images[0].png) - expected).max() <= TOLERANCE
