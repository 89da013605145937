"""One-step samplers on sigmas (k-diffusion's family): Euler, Heun, DPM-Solver-2, their ancestral forms, LCM, DDPM.

Each sampler integrates the probability-flow ODE (or its SDE) of a denoiser `model(x, sigma) -> x0` over a
descending list of sigmas. Numerics follow k-diffusion as A1111 calls it and ComfyUI vendors it (the
package is the test oracle); the code is this project's. Random draws come from a `NoiseSource`, so the
caller decides whose random stream they reproduce.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Noise for the step from sigma to sigma_next, shaped like the latent (standard normal).
NoiseSource = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Called once per step with (step index, current x, denoised estimate).
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class SolverOptions:
    """Sampler knobs A1111 exposes (eta, churn) and ComfyUI's custom sampler nodes set."""

    eta: float = 1.0
    s_noise: float = 1.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    solver_type: str = "midpoint"  # dpmpp_2m_sde: "midpoint" or "heun"
    r: float = 0.5  # dpmpp_sde: the intermediate point's position in log-sigma
    denoise_last: bool = True  # lms: jump to the estimate on the step to 0 (ComfyUI), not extrapolate (A1111)


def derivative(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """dx/dsigma of the probability-flow ODE given the denoiser's estimate."""
    return (x - denoised) / sigma


def ancestral_split(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma_down, sigma_up): step deterministically down to sigma_down, then add sigma_up of fresh noise."""
    if not eta:
        return sigma_next, torch.zeros_like(sigma_next)
    up = torch.minimum(sigma_next, eta * (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
    return (sigma_next ** 2 - up ** 2) ** 0.5, up


def _churned(x: torch.Tensor, sigmas: torch.Tensor, i: int, opts: SolverOptions,
             noise: NoiseSource) -> tuple[torch.Tensor, torch.Tensor]:
    """Karras' stochastic churn: raise sigma by gamma and add the matching noise (a no-op at s_churn 0)."""
    sigma = sigmas[i]
    gamma = 0.0
    if opts.s_churn > 0 and opts.s_tmin <= sigma <= opts.s_tmax:
        gamma = min(opts.s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1)
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + noise(sigma, sigmas[i + 1]) * opts.s_noise * (sigma_hat ** 2 - sigma ** 2) ** 0.5
    return x, sigma_hat


def euler(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource, callback: StepCallback,
          opts: SolverOptions) -> torch.Tensor:
    """Euler steps (Karras et al. 2022, algorithm 2 without the second-order correction)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, opts, noise)
        denoised = model(x, sigma_hat)
        callback(i, x, denoised)
        x = x + derivative(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
    return x


def euler_ancestral(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource,
                    callback: StepCallback, opts: SolverOptions) -> torch.Tensor:
    """Euler to sigma_down, then fresh noise up to sigma_next."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        down, up = ancestral_split(sigmas[i], sigmas[i + 1], opts.eta)
        callback(i, x, denoised)
        x = x + derivative(x, sigmas[i], denoised) * (down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * opts.s_noise * up
    return x


def heun(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource, callback: StepCallback,
         opts: SolverOptions) -> torch.Tensor:
    """Heun's method: an Euler step corrected by the slope at its end (Euler for the last step to 0)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, opts, noise)
        denoised = model(x, sigma_hat)
        d = derivative(x, sigma_hat, denoised)
        callback(i, x, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = derivative(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1]))
        x = x + (d + d_2) / 2 * dt
    return x


def _log_midpoint(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.log().lerp(b.log(), 0.5).exp()


def dpm_2(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource, callback: StepCallback,
          opts: SolverOptions) -> torch.Tensor:
    """DPM-Solver-2 in Karras' form: the slope taken at the log-midpoint sigma."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, opts, noise)
        denoised = model(x, sigma_hat)
        d = derivative(x, sigma_hat, denoised)
        callback(i, x, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
            continue
        sigma_mid = _log_midpoint(sigma_hat, sigmas[i + 1])
        x_2 = x + d * (sigma_mid - sigma_hat)
        d_2 = derivative(x_2, sigma_mid, model(x_2, sigma_mid))
        x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


def dpm_2_ancestral(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource,
                    callback: StepCallback, opts: SolverOptions) -> torch.Tensor:
    """DPM-Solver-2 down to sigma_down, then fresh noise."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        down, up = ancestral_split(sigmas[i], sigmas[i + 1], opts.eta)
        callback(i, x, denoised)
        d = derivative(x, sigmas[i], denoised)
        if down == 0:
            x = x + d * (down - sigmas[i])
            continue
        sigma_mid = _log_midpoint(sigmas[i], down)
        x_2 = x + d * (sigma_mid - sigmas[i])
        d_2 = derivative(x_2, sigma_mid, model(x_2, sigma_mid))
        x = x + d_2 * (down - sigmas[i])
        x = x + noise(sigmas[i], sigmas[i + 1]) * opts.s_noise * up
    return x


def dpmpp_2s_ancestral(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource,
                       callback: StepCallback, opts: SolverOptions) -> torch.Tensor:
    """DPM-Solver++(2S), single-step second order in log-sigma, ancestral."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        down, up = ancestral_split(sigmas[i], sigmas[i + 1], opts.eta)
        callback(i, x, denoised)
        if down == 0:
            x = x + derivative(x, sigmas[i], denoised) * (down - sigmas[i])
        else:
            t, t_next = -sigmas[i].log(), -down.log()
            h = t_next - t
            s = t + h / 2
            x_2 = (s.neg().exp() / sigmas[i]) * x - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, s.neg().exp())
            x = (down / sigmas[i]) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * opts.s_noise * up
    return x


def dpmpp_sde(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource,
              callback: StepCallback, opts: SolverOptions) -> torch.Tensor:
    """DPM-Solver++ (stochastic): two model calls per step, with noise at both stages."""
    r = opts.r
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        callback(i, x, denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        s = t + h * r
        sigma_s = s.neg().exp()
        # Stage 1: to the intermediate point
        down, up = ancestral_split(sigmas[i], sigma_s, opts.eta)
        s_ = -down.log()
        x_2 = (down / sigmas[i]) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(sigmas[i], sigma_s) * opts.s_noise * up
        denoised_2 = model(x_2, sigma_s)
        # Stage 2: the full step with the blended estimate
        down, up = ancestral_split(sigmas[i], sigmas[i + 1], opts.eta)
        t_next_ = -down.log()
        blend = (1 - 1 / (2 * r)) * denoised + (1 / (2 * r)) * denoised_2
        x = (down / sigmas[i]) * x - (t - t_next_).expm1() * blend
        x = x + noise(sigmas[i], sigmas[i + 1]) * opts.s_noise * up
    return x


def lcm(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource, callback: StepCallback,
        opts: SolverOptions) -> torch.Tensor:
    """Latent Consistency: jump to the estimate, then re-noise to the next sigma."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        callback(i, x, denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
    return x


def ddpm(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource, callback: StepCallback,
         opts: SolverOptions) -> torch.Tensor:
    """The DDPM ancestral posterior step, taken in variance-preserving space."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_prev = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma)
        callback(i, x, denoised)
        eps = (x - denoised) / sigma
        a_cum, a_cum_prev = 1 / (sigma * sigma + 1), 1 / (sigma_prev * sigma_prev + 1)
        alpha = a_cum / a_cum_prev
        vp = x / torch.sqrt(1.0 + sigma ** 2.0)
        mu = (1.0 / alpha).sqrt() * (vp - (1 - alpha) * eps / (1 - a_cum).sqrt())
        if sigma_prev > 0:
            mu = mu + ((1 - alpha) * (1.0 - a_cum_prev) / (1.0 - a_cum)).sqrt() * noise(sigma, sigma_prev)
            mu = mu * torch.sqrt(1.0 + sigma_prev ** 2.0)
        x = mu
    return x
