"""Random numbers drawn as ComfyUI and A1111 draw them, from CPU generators so every device gives one image.

ComfyUI: one seed per sampler node. The initial noise is `torch.randn(latent shape)` from a CPU generator
seeded with it; ancestral samplers draw per-step noise from a second CPU generator seeded with seed + 1;
SDE samplers from a Brownian tree (torchsde) whose entropy is the seed.
A1111: image i of a batch has its own seed (and subseed); its initial noise is `randn(4, H/8, W/8)` of
that seed, optionally slerped towards the subseed's noise and pasted from a different seed size; per-step
noise continues each image's own generator, and SDE samplers use one Brownian tree per image seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchsde

from sdfleet.engine.k_solvers import NoiseSource


def _generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(int(seed))


def comfy_initial_noise(shape: Sequence[int], seed: int, batch_index: Sequence[int] | None = None) -> torch.Tensor:
    """ComfyUI's `prepare_noise`: standard normal noise of the latent's shape from the seed.

    With `batch_index` (a latent picked out of a batch by LatentFromBatch) item k gets the noise image
    batch_index[k] had in the whole batch: one draw per image up to the largest index, as ComfyUI does."""
    if not batch_index or len(batch_index) != shape[0]:
        return torch.randn(tuple(shape), generator=_generator(seed), dtype=torch.float32)
    generator = _generator(seed)
    wanted = set(batch_index)
    drawn: dict[int, torch.Tensor] = {}
    for index in range(max(batch_index) + 1):
        noise = torch.randn((1, *shape[1:]), generator=generator, dtype=torch.float32)
        if index in wanted:
            drawn[index] = noise
    return torch.cat([drawn[index] for index in batch_index])


class GeneratorNoise:
    """Per-step noise from one CPU generator (ComfyUI's `default_noise_sampler` seeded with seed + 1)."""

    def __init__(self, shape: Sequence[int], seed: int) -> None:
        self.shape = tuple(shape)
        self.generator = _generator(seed)

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.generator, dtype=torch.float32)


class BrownianNoise:
    """Per-step noise as Brownian increments between sigmas: the same path whatever the step sizes.

    One seed: one tree for the whole batch (ComfyUI). A list: one tree per image (A1111's batch-independent
    DPM++ SDE). Trees live on the CPU so the noise is the same on every device.
    """

    def __init__(self, shape: Sequence[int], sigma_min: float, sigma_max: float, seed: int | Sequence[int]) -> None:
        t0, t1 = torch.tensor(float(sigma_min)), torch.tensor(float(sigma_max))
        self.sign = 1 if t0 < t1 else -1
        t0, t1 = (t0, t1) if t0 < t1 else (t1, t0)
        self.batched = not isinstance(seed, int)
        seeds = list(seed) if self.batched else [seed]
        w0 = torch.zeros(tuple(shape)[1:] if self.batched else tuple(shape), dtype=torch.float32)
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(s)) for s in seeds]

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma).float().cpu(), torch.as_tensor(sigma_next).float().cpu()
        sign = 1 if t0 < t1 else -1
        low, high = (t0, t1) if t0 < t1 else (t1, t0)
        w = torch.stack([tree(low, high) for tree in self.trees]) * (self.sign * sign)
        w = w if self.batched else w[0]
        return w / (t1 - t0).abs().sqrt()


def brownian_for(x_shape: Sequence[int], sigmas: torch.Tensor, seed: int | Sequence[int]) -> BrownianNoise:
    """A Brownian noise source spanning the schedule's smallest non-zero and largest sigma."""
    positive = sigmas[sigmas > 0]
    return BrownianNoise(x_shape, float(positive.min()), float(sigmas.max()), seed)


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's spherical interpolation of two noise tensors [C, H, W], normalized along dim 1 as it does."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


@dataclass(frozen=True)
class A1111Seeds:
    """The seeds of one A1111 batch: one per image, subseeds, variation strength and the seed's original size."""

    seeds: tuple[int, ...]
    subseeds: tuple[int, ...] = ()
    subseed_strength: float = 0.0
    resize_from_h: int = 0
    resize_from_w: int = 0

    @classmethod
    def for_batch(cls, *, seed: int, batch_size: int, subseed: int = 0, subseed_strength: float = 0.0,
                  resize_from_h: int = 0, resize_from_w: int = 0) -> A1111Seeds:
        """A1111's numbering: image i gets seed + i, unless a variation strength is set (then subseed + i)."""
        seeds = tuple(seed + (i if subseed_strength == 0 else 0) for i in range(batch_size))
        subseeds = tuple(subseed + i for i in range(batch_size))
        return cls(seeds, subseeds, float(subseed_strength), int(resize_from_h), int(resize_from_w))


class A1111Noise:
    """A1111's `ImageRNG`: the batch's initial noise, then per-image per-step noise (`randn_like` draws)."""

    def __init__(self, shape: Sequence[int], seeds: A1111Seeds) -> None:
        self.shape = tuple(shape)  # one image: (C, H, W)
        self.seeds = seeds
        self.generators = [_generator(s) for s in seeds.seeds]

    def initial(self) -> torch.Tensor:
        """The first draw: each image's noise, with variation seed and seed-resize applied."""
        s = self.seeds
        resized = s.resize_from_h > 0 and s.resize_from_w > 0
        noise_shape = (self.shape[0], s.resize_from_h // 8, s.resize_from_w // 8) if resized else self.shape
        images = []
        for i, (seed, generator) in enumerate(zip(s.seeds, self.generators, strict=True)):
            subnoise = None
            if s.subseeds and s.subseed_strength != 0:
                subseed = s.subseeds[i] if i < len(s.subseeds) else 0
                subnoise = torch.randn(noise_shape, generator=_generator(subseed))
            if noise_shape != self.shape:
                noise = torch.randn(noise_shape, generator=_generator(seed))
            else:
                noise = torch.randn(self.shape, generator=generator)
            if subnoise is not None:
                noise = slerp(s.subseed_strength, noise, subnoise)
            if noise_shape != self.shape:
                noise = _paste_centered(torch.randn(self.shape, generator=generator), noise)
            images.append(noise)
        return torch.stack(images)

    def __call__(self, sigma: torch.Tensor | None = None, sigma_next: torch.Tensor | None = None) -> torch.Tensor:
        """The next per-step draw: each image's generator continues where its initial noise left it."""
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators])


def _paste_centered(target: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Paste noise made for another size into the middle of `target` (cropping it where it is larger)."""
    dx = (target.shape[2] - noise.shape[2]) // 2
    dy = (target.shape[1] - noise.shape[1]) // 2
    w = noise.shape[2] if dx >= 0 else noise.shape[2] + 2 * dx
    h = noise.shape[1] if dy >= 0 else noise.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    target[:, ty:ty + h, tx:tx + w] = noise[:, sy:sy + h, sx:sx + w]
    return target


__all__ = ["A1111Noise", "A1111Seeds", "BrownianNoise", "GeneratorNoise", "NoiseSource", "brownian_for",
           "comfy_initial_noise", "slerp"]
