"""Aspect-ratio buckets as kohya sd-scripts makes them, and the order batches are drawn in, epoch by epoch.

Every bucket holds at most resolution² pixels with sides multiples of 64; an image goes to the bucket of the
nearest aspect ratio, is scaled to cover it and cropped at the centre. A batch never mixes buckets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DIVISIBLE = 64


def make_buckets(resolution: int, *, min_size: int, max_size: int) -> list[tuple[int, int]]:
    """(width, height) buckets of area ≤ resolution², both orientations, sorted (kohya's make_bucket_resolutions)."""
    max_area = resolution * resolution
    side = int(math.sqrt(max_area) // DIVISIBLE) * DIVISIBLE
    found = {(side, side)}
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // DIVISIBLE) * DIVISIBLE)
        if height >= min_size:
            found.add((width, height))
            found.add((height, width))
        width += DIVISIBLE
    return sorted(found)


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to the image's."""
    ratio = width / height
    return min(buckets, key=lambda b: (abs(b[0] / b[1] - ratio), -b[0] * b[1]))


@dataclass(frozen=True)
class Placement:
    """How an image becomes a training tensor: resized to `resized`, cropped at `crop` (top, left) to `bucket`."""

    bucket: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int]


def place(width: int, height: int, bucket: tuple[int, int]) -> Placement:
    """Scale to cover the bucket (kohya's rounding), then centre-crop."""
    bucket_w, bucket_h = bucket
    scale = bucket_w / width if bucket_w / bucket_h > width / height else bucket_h / height
    resized = (max(bucket_w, int(width * scale + 0.5)), max(bucket_h, int(height * scale + 0.5)))
    crop = ((resized[1] - bucket_h) // 2, (resized[0] - bucket_w) // 2)
    return Placement(bucket=bucket, resized=resized, crop=crop)


class BatchSchedule:
    """The batches of every epoch, drawn deterministically from the seed: a micro-batch number is a position.

    Each epoch shuffles every bucket's items (an item appears `repeats` times), cuts them into batches (the last
    one of a bucket may be short, as in kohya), and shuffles the batches."""

    def __init__(self, *, buckets_of: list[tuple[int, int]], repeats: list[int], batch_size: int, seed: int) -> None:
        self._buckets_of = buckets_of
        self._repeats = repeats
        self._batch_size = batch_size
        self._seed = seed
        self._cached_epoch: int | None = None
        self._cached: list[list[int]] = []
        self.batches_per_epoch = sum(
            math.ceil(count / batch_size) for count in self._bucket_counts().values())

    def _bucket_counts(self) -> dict[tuple[int, int], int]:
        counts: dict[tuple[int, int], int] = {}
        for bucket, repeats in zip(self._buckets_of, self._repeats, strict=True):
            counts[bucket] = counts.get(bucket, 0) + repeats
        return counts

    def epoch(self, epoch: int) -> list[list[int]]:
        """The batches (lists of item indices) of one epoch, in order."""
        if self._cached_epoch == epoch:
            return self._cached
        generator = torch.Generator().manual_seed(_mix(self._seed, epoch, 0x0B0C))
        by_bucket: dict[tuple[int, int], list[int]] = {}
        for index, (bucket, repeats) in enumerate(zip(self._buckets_of, self._repeats, strict=True)):
            by_bucket.setdefault(bucket, []).extend([index] * repeats)
        batches = []
        for bucket in sorted(by_bucket):
            items = by_bucket[bucket]
            order = torch.randperm(len(items), generator=generator).tolist()
            shuffled = [items[i] for i in order]
            batches += [shuffled[i:i + self._batch_size] for i in range(0, len(shuffled), self._batch_size)]
        order = torch.randperm(len(batches), generator=generator).tolist()
        self._cached_epoch, self._cached = epoch, [batches[i] for i in order]
        return self._cached

    def batch(self, micro_step: int) -> tuple[int, list[int]]:
        """(epoch, item indices) of micro-batch number `micro_step` (from 0)."""
        epoch, index = divmod(micro_step, self.batches_per_epoch)
        return epoch, self.epoch(epoch)[index]


def _mix(seed: int, *values: int) -> int:
    """A generator seed derived from the run's seed and a position (splitmix64)."""
    x = seed & 0xFFFFFFFFFFFFFFFF
    for v in values:
        x = (x + 0x9E3779B97F4A7C15 + v) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


def step_generator(seed: int, micro_step: int, device: str = "cpu") -> torch.Generator:
    """The generator of one micro-batch's randomness (noise, timesteps, flips, caption dropout)."""
    return torch.Generator(device).manual_seed(_mix(seed, micro_step, 0x5EED))
