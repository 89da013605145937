"""Model patches a MODEL value carries: ModelSamplingDiscrete, RescaleCFG, FreeU / FreeU_V2 (ComfyUI's).

A patch is data on the ModelRef; the sampler applies it while it runs: a different noise-level mapping,
a different guidance function, or hooks on the UNet's decoder that are removed afterwards (the cached
UNet stays unpatched, as LoRAs are applied and removed).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import UNet2DConditionModel

from sdfleet.engine.denoising import CfgFunction
from sdfleet.engine.model_sampling import ModelSampling

#: ComfyUI's ModelSamplingDiscrete choices that apply to SD 1.x/2.x/XL, and the prediction type each means.
SAMPLING_TYPES = {"eps": "epsilon", "v_prediction": "v_prediction", "lcm": "lcm", "x0": "x0"}


@dataclass(frozen=True)
class SamplingPatch:
    """ModelSamplingDiscrete: how the model's output is read, and zero terminal SNR."""

    sampling: str
    zsnr: bool = False


@dataclass(frozen=True)
class RescaleCfgPatch:
    """RescaleCFG (Lin et al. 2023): rescale the guided prediction towards the positive one's spread."""

    multiplier: float


@dataclass(frozen=True)
class FreeUPatch:
    """FreeU (v1 or v2): scale the decoder's backbone features and damp its skip features' low frequencies."""

    b1: float
    b2: float
    s1: float
    s2: float
    version: int = 1


ModelPatch = SamplingPatch | RescaleCfgPatch | FreeUPatch


def model_sampling_for(config: Mapping[str, Any], patches: Sequence[ModelPatch]) -> ModelSampling:
    """The checkpoint's noise levels, or the last ModelSamplingDiscrete's (it replaces them, as in ComfyUI)."""
    override = next((p for p in reversed(patches) if isinstance(p, SamplingPatch)), None)
    if override is None:
        return ModelSampling.from_config(config)
    return ModelSampling.from_config(config, prediction_type=SAMPLING_TYPES[override.sampling],
                                     zero_terminal_snr=override.zsnr)


def cfg_function_for(patches: Sequence[ModelPatch]) -> CfgFunction | None:
    """The last RescaleCFG's guidance function (ComfyUI keeps one sampler_cfg_function), or None."""
    rescale = next((p for p in reversed(patches) if isinstance(p, RescaleCfgPatch)), None)
    if rescale is None:
        return None
    multiplier = rescale.multiplier

    def rescale_cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float, x: torch.Tensor,
                    sigma: float) -> torch.Tensor:
        # Rescaling is defined on v-prediction outputs: convert both estimates to v, guide, rescale, back to x0
        x_vp = x / (sigma * sigma + 1.0)
        root = (sigma ** 2 + 1.0) ** 0.5
        cond_v = (x_vp - cond) * root / sigma
        uncond_v = (x_vp - uncond) * root / sigma
        guided = uncond_v + scale * (cond_v - uncond_v)
        rescaled = guided * (torch.std(cond_v, dim=(1, 2, 3), keepdim=True)
                             / torch.std(guided, dim=(1, 2, 3), keepdim=True))
        final = multiplier * rescaled + (1.0 - multiplier) * guided
        return x_vp - final * sigma / root

    return rescale_cfg


def fourier_filter(x: torch.Tensor, *, threshold: int, scale: float) -> torch.Tensor:
    """Multiply the centred (2·threshold)² low-frequency block of each feature map's spectrum by `scale`."""
    spectrum = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    height, width = spectrum.shape[-2:]
    mask = torch.ones(spectrum.shape, device=x.device)
    row, col = height // 2, width // 2
    mask[..., row - threshold:row + threshold, col - threshold:col + threshold] = scale
    spectrum = torch.fft.ifftshift(spectrum * mask, dim=(-2, -1))
    return torch.fft.ifftn(spectrum, dim=(-2, -1)).real.to(x.dtype)


def _free_u(patch: FreeUPatch, h: torch.Tensor, skip: torch.Tensor, factors: tuple[float, float]):
    backbone, skip_scale = factors
    h = h.clone()
    half = h.shape[1] // 2
    if patch.version == 2:
        mean = h.mean(1).unsqueeze(1)
        flat = mean.view(mean.shape[0], -1)
        low, high = flat.min(dim=-1, keepdim=True)[0], flat.max(dim=-1, keepdim=True)[0]
        mean = (mean - low[:, :, None, None]) / (high - low)[:, :, None, None]
        h[:, :half] = h[:, :half] * ((backbone - 1) * mean + 1)
    else:
        h[:, :half] = h[:, :half] * backbone
    return h, fourier_filter(skip, threshold=1, scale=skip_scale)


def _decoder_inputs(unet: UNet2DConditionModel) -> Iterator[tuple[torch.nn.Module, int]]:
    """Every decoder resnet with the channel count of the backbone half of its input (the rest is the skip)."""
    channels = list(reversed(unet.config.block_out_channels))
    for i, block in enumerate(unet.up_blocks):
        previous = channels[max(i - 1, 0)]
        for j, resnet in enumerate(block.resnets):
            yield resnet, previous if j == 0 else channels[i]


@contextmanager
def unet_patched(unet: UNet2DConditionModel, patches: Sequence[ModelPatch]) -> Iterator[None]:
    """Apply FreeU patches to the UNet while the block runs (ComfyUI's output_block_patch, stacked in order).

    As ComfyUI (and the FreeU authors), a decoder block whose backbone input has 4× the model's base
    channels gets (b1, s1) and one with 2× gets (b2, s2); diffusers' `enable_freeu` picks by block index
    instead, which differs on SD 1.x (docs/samplers.md)."""
    free_u = [p for p in patches if isinstance(p, FreeUPatch)]
    if not free_u:
        yield
        return
    base = unet.config.block_out_channels[0]
    handles = []
    for resnet, backbone in _decoder_inputs(unet):
        def hook(module, args, kwargs, backbone=backbone):
            x = args[0]
            h, skip = x[:, :backbone], x[:, backbone:]
            for patch in free_u:
                factors = {base * 4: (patch.b1, patch.s1), base * 2: (patch.b2, patch.s2)}.get(backbone)
                if factors is not None:
                    h, skip = _free_u(patch, h, skip, factors)
            return (torch.cat([h, skip], dim=1), *args[1:]), kwargs

        handles.append(resnet.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
