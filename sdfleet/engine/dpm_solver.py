"""DPM-Solver (Lu et al. 2022) in k-diffusion's form: `dpm_fast` (fixed steps) and `dpm_adaptive` (error control).

Both work in t = -log(sigma) between the schedule's first sigma and its last non-zero one, so they use
only the ends of the sigma list, as k-diffusion's `sample_dpm_fast` / `sample_dpm_adaptive` do.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from sdfleet.engine.k_solvers import Model, NoiseSource, SolverOptions, StepCallback, ancestral_split


def _sigma(t: torch.Tensor) -> torch.Tensor:
    return t.neg().exp()


def _t(sigma: torch.Tensor) -> torch.Tensor:
    return -sigma.log()


class _Solver:
    """Single steps of order 1–3 from eps estimates, caching the model calls a step shares."""

    def __init__(self, model: Model, count_call: Callable[[], None]) -> None:
        self.model = model
        self.count_call = count_call

    def eps(self, cache: dict, key: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if key not in cache:
            cache[key] = (x - self.model(x, _sigma(t))) / _sigma(t)
            self.count_call()
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        return x - _sigma(t_next) * h.expm1() * self.eps(cache, "eps", x, t)

    def step_2(self, x, t, t_next, cache, r1=1 / 2):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = x - _sigma(s2) * (r2 * h).expm1() * eps \
            - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)


def _ends(sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sigma_min = sigmas[-1] if sigmas[-1] != 0 else sigmas[-2]
    return sigmas[0], sigma_min


def dpm_fast(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource, callback: StepCallback,
             opts: SolverOptions) -> torch.Tensor:
    """DPM-Solver-Fast with as many model calls as the schedule has steps (orders 3, …, 3, 2, 1)."""
    eta = opts.eta
    calls = len(sigmas) - 1
    if calls <= 0:
        return x
    sigma_max, sigma_min = _ends(sigmas)
    t_start, t_end = _t(torch.as_tensor(sigma_max)), _t(torch.as_tensor(sigma_min))
    solver = _Solver(model, lambda: None)
    m = math.floor(calls / 3) + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if calls % 3 == 0 else [3] * (m - 1) + [calls % 3]
    for i, order in enumerate(orders):
        cache: dict = {}
        t, t_next = ts[i], ts[i + 1]
        if eta:
            down, _ = ancestral_split(_sigma(t), _sigma(t_next), eta)
            t_next_ = torch.minimum(t_end, _t(down))
            up = (_sigma(t_next) ** 2 - _sigma(t_next_) ** 2) ** 0.5
        else:
            t_next_, up = t_next, 0.0
        eps = solver.eps(cache, "eps", x, t)
        callback(i, x, x - _sigma(t) * eps)
        step = (solver.step_1, solver.step_2, solver.step_3)[order - 1]
        x = step(x, t, t_next_, cache)
        x = x + up * opts.s_noise * noise(_sigma(t), _sigma(t_next))
    return x


def dpm_adaptive(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSource,
                 callback: StepCallback, opts: SolverOptions, order: int = 3, rtol: float = 0.05,
                 atol: float = 0.0078, h_init: float = 0.05, pcoeff: float = 0.0, icoeff: float = 1.0,
                 dcoeff: float = 0.0, accept_safety: float = 0.81) -> torch.Tensor:
    """DPM-Solver-12/23 with a PID step-size controller; as many steps as the error tolerance needs."""
    eta = opts.eta
    if len(sigmas) <= 1:
        return x
    sigma_max, sigma_min = _ends(sigmas)
    t_start, t_end = _t(torch.as_tensor(sigma_max)), _t(torch.as_tensor(sigma_min))
    solver = _Solver(model, lambda: None)
    forward = t_end > t_start
    h = abs(h_init) * (1 if forward else -1)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    weight = 1.5 if eta else order
    b1, b2, b3 = (pcoeff + icoeff + dcoeff) / weight, -(pcoeff + 2 * dcoeff) / weight, dcoeff / weight
    errors: list[float] = []
    s, x_prev, step = t_start, x, 0
    while (s < t_end - 1e-5) if forward else (s > t_end + 1e-5):
        cache: dict = {}
        t = torch.minimum(t_end, s + h) if forward else torch.maximum(t_end, s + h)
        if eta:
            down, _ = ancestral_split(_sigma(s), _sigma(t), eta)
            t_ = torch.minimum(t_end, _t(down))
            up = (_sigma(t) ** 2 - _sigma(t_) ** 2) ** 0.5
        else:
            t_, up = t, 0.0
        eps = solver.eps(cache, "eps", x, s)
        denoised = x - _sigma(s) * eps
        if order == 2:
            x_low = solver.step_1(x, s, t_, cache)
            x_high = solver.step_2(x, s, t_, cache)
        else:
            x_low = solver.step_2(x, s, t_, cache, r1=1 / 3)
            x_high = solver.step_3(x, s, t_, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        # PID controller on the inverse error, as k-diffusion's PIDStepSizeController
        inverse = 1 / (float(error) + 1e-8)
        if not errors:
            errors = [inverse, inverse, inverse]
        errors[0] = inverse
        factor = errors[0] ** b1 * errors[1] ** b2 * errors[2] ** b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= accept_safety
        if accept:
            errors[2], errors[1] = errors[1], errors[0]
        h *= factor
        if accept:
            x_prev = x_low
            x = x_high + up * opts.s_noise * noise(_sigma(s), _sigma(t))
            s = t
        callback(step, x, denoised)
        step += 1
    return x
