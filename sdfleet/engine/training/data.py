"""Training images on local disk: placed in buckets, turned into tensors, encoded to latents once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdfleet.engine.image_admission import DEFAULT_MAX_IMAGE_PIXELS, open_admitted
from sdfleet.engine.training.buckets import Placement, make_buckets, nearest_bucket, place


@dataclass(frozen=True)
class TrainingItem:
    """One image of the dataset as the trainer receives it."""

    path: Path
    caption: str
    repeats: int = 1


class ImageSet:
    """The dataset's images with their bucket placements; pixels are read only when an image is encoded."""

    def __init__(self, items: list[TrainingItem], *, resolution: int, enable_bucket: bool,
                 bucket_range: tuple[int, int], max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        if not items:
            raise ValueError("the dataset has no images")
        self.items = items
        self._max_pixels = max_pixels
        buckets = make_buckets(resolution, min_size=bucket_range[0], max_size=bucket_range[1]) if enable_bucket \
            else [(resolution, resolution)]
        self.sizes = [self._size(item.path) for item in items]
        self.placements: list[Placement] = [place(w, h, nearest_bucket(w, h, buckets)) for w, h in self.sizes]

    def _size(self, path: Path) -> tuple[int, int]:
        with open_admitted(path, max_pixels=self._max_pixels) as image:
            return image.size

    @property
    def buckets_of(self) -> list[tuple[int, int]]:
        return [p.bucket for p in self.placements]

    def pixels(self, index: int, *, flip: bool) -> torch.Tensor:
        """The image as a 3×H×W tensor in [-1, 1], resized and cropped to its bucket (mirrored when `flip`)."""
        placement = self.placements[index]
        with open_admitted(self.items[index].path, max_pixels=self._max_pixels) as image:
            image = image.convert("RGB")
        image = image.resize(placement.resized, Image.Resampling.LANCZOS)
        top, left = placement.crop
        width, height = placement.bucket
        image = image.crop((left, top, left + width, top + height))
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class LatentCache:
    """VAE latents of each (image, flip), computed on first use (the distribution's mean, scaled), kept on the
    training device. Deterministic per image, so a resumed run sees the same latents as the uninterrupted one."""

    def __init__(self, images: ImageSet, vae, *, device: str, dtype: torch.dtype) -> None:
        self._images = images
        self._vae = vae
        self._device = device
        self._dtype = dtype
        self._latents: dict[tuple[int, bool], torch.Tensor] = {}

    @torch.no_grad()
    def get(self, index: int, *, flip: bool) -> torch.Tensor:
        key = (index, flip)
        if key not in self._latents:
            pixels = self._images.pixels(index, flip=flip).unsqueeze(0).to(self._device, dtype=self._vae.dtype)
            mean = self._vae.encode(pixels).latent_dist.mean
            self._latents[key] = (mean * self._vae.config.scaling_factor).to(self._dtype)[0]
        return self._latents[key]
