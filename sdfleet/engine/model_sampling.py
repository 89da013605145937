"""A discrete-time diffusion model seen in sigma space: noise levels, timesteps and input/output scalings.

Samplers work on sigmas (k-diffusion's convention); the UNet wants a timestep and a scaled input. This is
ComfyUI's `ModelSamplingDiscrete` and k-diffusion's `DiscreteSchedule`, built from a diffusers scheduler
config. ComfyUI hands the UNet the nearest integer timestep; A1111 (k-diffusion without quantization)
hands it the interpolated fractional one — `timestep(..., quantize=...)` serves both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "lcm", "x0")
#: ComfyUI's LCM sampling keeps 50 of the 1000 timesteps (every 20th, ending at 999).
LCM_ORIGINAL_TIMESTEPS = 50


def _betas(config: Mapping[str, Any]) -> torch.Tensor:
    steps = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    trained = config.get("trained_betas")
    if trained is not None:
        return torch.tensor(trained, dtype=torch.float64)
    schedule = config.get("beta_schedule", "scaled_linear")
    if schedule == "scaled_linear":
        return torch.linspace(start ** 0.5, end ** 0.5, steps, dtype=torch.float64) ** 2
    if schedule == "linear":
        return torch.linspace(start, end, steps, dtype=torch.float64)
    raise ValueError(f"beta_schedule {schedule!r} is not supported; expected scaled_linear or linear")


def _rescale_zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alphas_cumprod) so the last timestep has zero SNR (Lin et al. 2023)."""
    root = alphas_cumprod.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    out = root ** 2
    # ComfyUI keeps the last value just above zero so its sigma stays finite.
    out[-1] = 4.8973451890853435e-08
    return out


@dataclass(frozen=True)
class ModelSampling:
    """A model's discrete noise levels (`sigmas[t]` for t = 0…T-1) and its prediction type.

    `prediction_type` "lcm" is ComfyUI's ModelSamplingDiscrete "lcm": the sigmas are every `skip_steps`-th
    timestep's (timestep of sigma index i: i × skip + skip − 1) and the estimate gets LCM's boundary scalings.
    """

    sigmas: torch.Tensor  # float32, ascending
    prediction_type: str = "epsilon"
    skip_steps: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, prediction_type: str | None = None,
                    zero_terminal_snr: bool | None = None) -> ModelSampling:
        """Build from a diffusers scheduler config; the keywords override what the config says."""
        betas = _betas(config)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        zsnr = config.get("rescale_betas_zero_snr", False) if zero_terminal_snr is None else zero_terminal_snr
        if zsnr:
            alphas_cumprod = _rescale_zero_terminal_snr(alphas_cumprod)
        kind = prediction_type or config.get("prediction_type") or "epsilon"
        if kind not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type {kind!r} is not supported; expected one of {PREDICTION_TYPES}")
        sigmas = (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float()
        if kind == "lcm":
            skip = len(sigmas) // LCM_ORIGINAL_TIMESTEPS
            kept = torch.arange(LCM_ORIGINAL_TIMESTEPS) * skip + (skip - 1)
            return cls(sigmas[kept], kind, skip)
        return cls(sigmas, kind)

    @property
    def num_timesteps(self) -> int:
        """The model's training timesteps (1000 for SD)."""
        return len(self.sigmas) * self.skip_steps

    @property
    def log_sigmas(self) -> torch.Tensor:
        """log(sigmas), the space timesteps are interpolated in."""
        return self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        """The smallest noise level (timestep 0)."""
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        """The largest noise level (the last timestep)."""
        return float(self.sigmas[-1])

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t = 1 / (1 + σ_t²)."""
        return 1.0 / (1.0 + self.sigmas.double() ** 2)

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        """The noise level at a (possibly fractional) timestep, interpolated in log sigma."""
        t = torch.as_tensor(timestep, dtype=torch.float32)
        if self.skip_steps > 1:
            t = (t - (self.skip_steps - 1)) / self.skip_steps
        t = t.clamp(0, len(self.sigmas) - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigmas = self.log_sigmas
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()

    def timestep(self, sigma: torch.Tensor, *, quantize: bool) -> torch.Tensor:
        """The timestep of each sigma: the nearest one (ComfyUI), or interpolated in log sigma (A1111)."""
        log_sigma = sigma.float().log()
        log_sigmas = self.log_sigmas.to(log_sigma.device)
        dists = log_sigma - log_sigmas[:, None]
        if quantize or self.skip_steps > 1:
            index = dists.abs().argmin(dim=0).view(sigma.shape)
            return (index * self.skip_steps + (self.skip_steps - 1)).float()
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=len(log_sigmas) - 2)
        high = low + 1
        w = ((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[high])).clamp(0, 1)
        return ((1 - w) * low + w * high).view(sigma.shape)

    def percent_to_sigma(self, percent: float) -> float:
        """ComfyUI's mapping of a sampling percentage (0 = start) to a sigma."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma((1.0 - percent) * (self.num_timesteps - 1)))

    def input_scale(self, sigma: torch.Tensor) -> torch.Tensor:
        """c_in: what the noisy latent is multiplied by before the UNet sees it."""
        return 1.0 / (sigma ** 2 + 1.0) ** 0.5

    def denoised(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """The model's clean-latent estimate from its raw output (eps, v, x0) at noise level sigma."""
        if self.prediction_type == "v_prediction":
            return x / (sigma ** 2 + 1.0) - output * sigma / (sigma ** 2 + 1.0) ** 0.5
        if self.prediction_type == "x0":
            return output
        x0 = x - output * sigma
        if self.prediction_type == "lcm":
            # LCM's consistency boundary condition, on the timestep scaled by 10 (sigma_data 0.5)
            t = float(self.timestep(torch.tensor([float(sigma)]), quantize=True)[0]) * 10.0
            c_skip = 0.25 / (t ** 2 + 0.25)
            c_out = t / (t ** 2 + 0.25) ** 0.5
            return c_out * x0 + c_skip * x
        return x0

    def is_max_denoise(self, first_sigma: float) -> bool:
        """ComfyUI: a schedule starting at the model's top noise level gets √(1+σ²)-scaled noise."""
        return abs(first_sigma - self.sigma_max) <= 1e-5 * max(abs(first_sigma), self.sigma_max) \
            or first_sigma > self.sigma_max
