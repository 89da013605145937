"""Sigma schedules: the noise levels a sampler steps through, as ComfyUI and A1111 compute them.

Every schedule returns a float32 tensor of `steps + 1` descending sigmas, usually ending in 0. ComfyUI's
names are its `SCHEDULER_HANDLERS` keys; A1111's are the `name`s of its `sd_schedulers.schedulers`.
The two agree except where noted (A1111's `beta` and `kl_optimal` are other formulas than ComfyUI's).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sdfleet.engine.model_sampling import ModelSampling

#: Align Your Steps noise levels (NVIDIA), for SD 1.x and SDXL, as ComfyUI lists them.
AYS_NOISE_LEVELS = {
    "SD1": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "SDXL": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
             0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
    "SVD": [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
}
#: A1111's rounded copies of the same lists.
_A1111_AYS = {
    "SD1": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    "SDXL": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
}


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def karras(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): evenly spaced in sigma^(1/rho)."""
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in log sigma."""
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp())


def polyexponential(steps: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """A polynomial ramp in log sigma (rho 1 is `exponential`)."""
    ramp = torch.linspace(1, 0, steps) ** rho
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def normal(ms: ModelSampling, steps: int, *, sgm: bool = False) -> torch.Tensor:
    """Evenly spaced timesteps from the last to the first (`sgm`: the first is left out, as SGM does)."""
    start = float(ms.timestep(torch.tensor([ms.sigma_max]), quantize=True)[0])
    end = float(ms.timestep(torch.tensor([ms.sigma_min]), quantize=True)[0])
    append = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(end)), 0, abs_tol=1e-5):
            steps, append = steps + 1, False
        timesteps = torch.linspace(start, end, steps)
    sigmas = torch.stack([ms.sigma(t) for t in timesteps]).float()
    return _append_zero(sigmas) if append else sigmas


def simple(ms: ModelSampling, steps: int) -> torch.Tensor:
    """Every (T / steps)-th of the model's own sigmas, from the top."""
    stride = len(ms.sigmas) / steps
    sigmas = [float(ms.sigmas[-(1 + int(i * stride))]) for i in range(steps)]
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def ddim_uniform(ms: ModelSampling, steps: int) -> torch.Tensor:
    """The model sigmas at timesteps 1, 1 + T//steps, …, as DDIM's uniform discretization."""
    first = 1
    if math.isclose(float(ms.sigmas[first]), 0, abs_tol=1e-5):
        steps, sigmas = steps + 1, []
    else:
        sigmas = [0.0]
    stride = max(len(ms.sigmas) // steps, 1)
    t = first
    while t < len(ms.sigmas):
        sigmas.append(float(ms.sigmas[t]))
        t += stride
    return torch.tensor(sigmas[::-1], dtype=torch.float32)


def _beta_ppf(q: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    from scipy import stats

    return stats.beta.ppf(q, alpha, beta)


def beta(ms: ModelSampling, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """ComfyUI's beta schedule (Lee et al. 2024): timesteps at beta-distribution quantiles, repeats dropped."""
    total = len(ms.sigmas) - 1
    ts = np.rint(_beta_ppf(1 - np.linspace(0, 1, steps, endpoint=False), alpha, beta_) * total)
    sigmas, last = [], -1.0
    for t in ts:
        if t != last:
            sigmas.append(float(ms.sigmas[int(t)]))
        last = t
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def beta_a1111(ms: ModelSampling, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """A1111's beta schedule: sigmas themselves spread between sigma_min and sigma_max at beta quantiles."""
    quantiles = _beta_ppf(1 - np.linspace(0, 1, steps), alpha, beta_)
    sigmas = [ms.sigma_min + q * (ms.sigma_max - ms.sigma_min) for q in quantiles]
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def linear_quadratic(ms: ModelSampling, steps: int, threshold_noise: float = 0.025,
                     linear_steps: int | None = None) -> torch.Tensor:
    """ComfyUI's linear-then-quadratic schedule (from Mochi), scaled to the model's sigma_max."""
    if steps == 1:
        schedule = [1.0, 0.0]
    else:
        linear_steps = steps // 2 if linear_steps is None else linear_steps
        linear = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        step_diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quadratic_coef = step_diff / (linear_steps * quadratic_steps ** 2)
        linear_coef = threshold_noise / linear_steps - 2 * step_diff / (quadratic_steps ** 2)
        const = quadratic_coef * (linear_steps ** 2)
        quadratic = [quadratic_coef * (i ** 2) + linear_coef * i + const for i in range(linear_steps, steps)]
        schedule = [1.0 - x for x in [*linear, *quadratic, 1.0]]
    return torch.tensor(schedule, dtype=torch.float32) * ms.sigma_max


def kl_optimal(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """ComfyUI's KL-optimal schedule: evenly spaced in arctan(sigma), then 0."""
    ramp = torch.arange(steps, dtype=torch.float32) / (steps - 1) if steps > 1 else torch.zeros(1)
    sigmas = torch.zeros(steps + 1)
    sigmas[:-1] = (ramp * math.atan(sigma_min) + (1 - ramp) * math.atan(sigma_max)).tan()
    return sigmas


def kl_optimal_a1111(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """A1111's KL-optimal schedule: steps + 1 points from sigma_max down to sigma_min (no final 0)."""
    i = torch.arange(steps + 1)
    return torch.tan(i / steps * math.atan(sigma_min) + (1.0 - i / steps) * math.atan(sigma_max)).float()


def _loglinear_interp(levels: list[float], count: int) -> np.ndarray:
    xs = np.linspace(0, 1, len(levels))
    ys = np.log(levels[::-1])
    return np.exp(np.interp(np.linspace(0, 1, count), xs, ys))[::-1].copy()


def align_your_steps(steps: int, *, model_type: str, denoise: float = 1.0) -> torch.Tensor:
    """ComfyUI's AlignYourStepsScheduler: NVIDIA's levels interpolated to steps + 1, the last set to 0."""
    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return torch.zeros(0)
        total = round(steps * denoise)
    sigmas = list(AYS_NOISE_LEVELS[model_type])
    if steps + 1 != len(sigmas):
        sigmas = list(_loglinear_interp(sigmas, steps + 1))
    sigmas = sigmas[-(total + 1):]
    sigmas[-1] = 0
    return torch.tensor(sigmas, dtype=torch.float32)


def align_your_steps_a1111(steps: int, *, model_type: str) -> torch.Tensor:
    """A1111's Align Your Steps: its rounded levels interpolated to `steps` points, then 0."""
    levels = list(_A1111_AYS[model_type])
    sigmas = np.append(_loglinear_interp(levels, steps), [0.0]) if steps != len(levels) else [*levels, 0.0]
    return torch.tensor(np.asarray(sigmas), dtype=torch.float32)


def turbo(ms: ModelSampling, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """ComfyUI's SDTurboScheduler: timesteps 999, 899, … (at most 10 steps), the first ones cut by denoise."""
    start = 10 - int(10 * denoise)
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start:start + steps]
    return _append_zero(ms.sigma(timesteps.float()).float())


_RANGE = Callable[[int, float, float], torch.Tensor]
_MODEL = Callable[[ModelSampling, int], torch.Tensor]

#: ComfyUI's schedulers, in its SCHEDULER_HANDLERS order (the KSampler combo lists them in this order).
COMFY: dict[str, _RANGE | _MODEL] = {
    "simple": simple,
    "sgm_uniform": lambda ms, steps: normal(ms, steps, sgm=True),
    "karras": karras,
    "exponential": exponential,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
    "normal": normal,
    "linear_quadratic": linear_quadratic,
    "kl_optimal": kl_optimal,
}
_USES_RANGE = {"karras", "exponential", "kl_optimal", "polyexponential"}


def comfy_sigmas(ms: ModelSampling, scheduler: str, steps: int) -> torch.Tensor:
    """ComfyUI's `calculate_sigmas(model_sampling, scheduler, steps)`."""
    if scheduler not in COMFY:
        raise ValueError(f"scheduler {scheduler!r} is unknown; expected one of {', '.join(COMFY)}")
    handler = COMFY[scheduler]
    if scheduler in _USES_RANGE:
        return handler(steps, ms.sigma_min, ms.sigma_max)
    return handler(ms, steps)


#: A1111's schedule types by their internal name ("automatic" is resolved per sampler before this).
A1111: dict[str, Callable[[ModelSampling, int, str], torch.Tensor]] = {
    "uniform": lambda ms, n, family: normal(ms, n),
    "karras": lambda ms, n, family: karras(n, ms.sigma_min, ms.sigma_max),
    "exponential": lambda ms, n, family: exponential(n, ms.sigma_min, ms.sigma_max),
    "polyexponential": lambda ms, n, family: polyexponential(n, ms.sigma_min, ms.sigma_max),
    "sgm_uniform": lambda ms, n, family: normal(ms, n, sgm=True),
    "kl_optimal": lambda ms, n, family: kl_optimal_a1111(n, ms.sigma_min, ms.sigma_max),
    "align_your_steps": lambda ms, n, family: align_your_steps_a1111(n, model_type=family),
    "simple": lambda ms, n, family: simple(ms, n),
    "normal": lambda ms, n, family: normal(ms, n),
    "ddim": lambda ms, n, family: ddim_uniform(ms, n),
    "beta": lambda ms, n, family: beta_a1111(ms, n),
}


def a1111_sigmas(ms: ModelSampling, scheduler: str, steps: int, *, model_type: str = "SD1") -> torch.Tensor:
    """A1111's `KDiffusionSampler.get_sigmas` for a schedule type (before any penultimate-sigma discard)."""
    if scheduler not in A1111:
        raise ValueError(f"scheduler {scheduler!r} is unknown; expected one of {', '.join(A1111)}")
    return A1111[scheduler](ms, steps, model_type)
