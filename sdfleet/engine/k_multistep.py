"""Multistep samplers on sigmas: linear multistep (LMS) and the DPM-Solver++ multistep family (2M, 2M SDE, 3M SDE).

They reuse the denoiser estimates of earlier steps instead of extra model calls; see k_solvers.py for the
shared conventions.
"""

from __future__ import annotations

import torch
from scipy import integrate

from sdfleet.engine.k_solvers import Model, NoiseSource, SolverOptions, StepCallback, derivative

LMS_ORDER = 4


def _lms_coefficient(order: int, sigmas: list[float], i: int, j: int) -> float:
    """∫ over [sigma_i, sigma_i+1] of the Lagrange basis polynomial of point i-j on the last `order` points."""
    def basis(tau: float) -> float:
        product = 1.0
        for k in range(order):
            if k != j:
                product *= (tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k])
        return product

    return integrate.quad(basis, sigmas[i], sigmas[i + 1], epsrel=1e-4)[0]


def lms(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource, callback: StepCallback,
        opts: SolverOptions) -> torch.Tensor:
    """Linear multistep of order 4; `opts.denoise_last` (ComfyUI) jumps to the estimate on the step to 0."""
    points = sigmas.detach().cpu().tolist()
    slopes: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        slopes.append(derivative(x, sigmas[i], denoised))
        slopes = slopes[-LMS_ORDER:]
        callback(i, x, denoised)
        if opts.denoise_last and sigmas[i + 1] == 0:
            x = denoised
            continue
        order = min(i + 1, LMS_ORDER)
        coefficients = [_lms_coefficient(order, points, i, j) for j in range(order)]
        x = x + sum(c * d for c, d in zip(coefficients, reversed(slopes), strict=False))
    return x


def dpmpp_2m(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource, callback: StepCallback,
             opts: SolverOptions) -> torch.Tensor:
    """DPM-Solver++(2M): second order from the previous estimate (first order on the first and last steps)."""
    previous = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        callback(i, x, denoised)
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        estimate = denoised
        if previous is not None and sigmas[i + 1] != 0:
            r = (t - (-sigmas[i - 1].log())) / h
            estimate = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
        x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * estimate
        previous = denoised
    return x


def dpmpp_2m_sde(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource,
                 callback: StepCallback, opts: SolverOptions) -> torch.Tensor:
    """DPM-Solver++(2M) SDE, with the midpoint or Heun correction (`opts.solver_type`)."""
    if opts.solver_type not in ("midpoint", "heun"):
        raise ValueError(f"solver_type must be midpoint or heun, got {opts.solver_type!r}")
    eta = opts.eta
    previous, h_last = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        callback(i, x, denoised)
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = sigmas[i].log() - sigmas[i + 1].log()
            eta_h = eta * h
            decay = (-h - eta_h).expm1().neg()
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + decay * denoised
            if previous is not None:
                r = h_last / h
                if opts.solver_type == "heun":
                    x = x + (decay / (-h - eta_h) + 1) * (1 / r) * (denoised - previous)
                else:
                    x = x + 0.5 * decay * (1 / r) * (denoised - previous)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() \
                    * opts.s_noise
        previous, h_last = denoised, h
    return x


def dpmpp_3m_sde(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource,
                 callback: StepCallback, opts: SolverOptions) -> torch.Tensor:
    """DPM-Solver++(3M) SDE: third order from the two previous estimates."""
    eta = opts.eta
    d_1 = d_2 = None
    h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        callback(i, x, denoised)
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = sigmas[i].log() - sigmas[i + 1].log()
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - d_1) / r0
                d1_1 = (d_1 - d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif h_1 is not None:
                x = x + phi_2 * (denoised - d_1) / (h_1 / h)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() \
                    * opts.s_noise
        d_1, d_2 = denoised, d_1
        h_1, h_2 = h, h_1
    return x
