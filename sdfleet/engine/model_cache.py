"""Loaded models kept in an LRU keyed by sha256 under a byte budget."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch


def module_bytes(value: Any) -> int:
    """Bytes held by the parameters and buffers of every torch module reachable as an attribute of `value`."""
    modules = [value] if isinstance(value, torch.nn.Module) else [
        v for v in vars(value).values() if isinstance(v, torch.nn.Module)] if hasattr(value, "__dict__") else []
    total = 0
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            total += tensor.numel() * tensor.element_size()
    return total


def default_budget(device: str) -> int:
    """Most of the accelerator's memory on CUDA, half the machine's RAM on the CPU."""
    if device.startswith("cuda") and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        return int(total * 0.8)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.5)
    except (ValueError, OSError, AttributeError):
        return 8 << 30


@dataclass
class _Entry:
    value: Any
    size: int


class ModelCache:
    """Least-recently-used cache of loaded models; entries in use by the current run are never evicted."""

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"memory budget must be positive, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pinned: set[str] = set()
        self.loads = 0
        self.evictions: list[str] = []
        self._load_seconds: dict[str, float] = {}  #: key → seconds spent loading it since take_load_seconds()

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def used_bytes(self) -> int:
        """Bytes held by all cached entries."""
        return sum(e.size for e in self._entries.values())

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        return list(self._entries)

    def get_or_load(self, key: str, load: Callable[[], Any], *, size: Callable[[Any], int] = module_bytes) -> Any:
        """Return the cached value for `key`, loading it (and evicting LRU entries to fit) on a miss."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self._pinned.add(key)
            return entry.value
        started = time.perf_counter()
        value = load()
        self.record_load(key, time.perf_counter() - started)
        self.loads += 1
        nbytes = size(value)
        self._entries[key] = _Entry(value, nbytes)
        self._pinned.add(key)
        self._evict(keep=key)
        return value

    def record_load(self, key: str, seconds: float) -> None:
        """Count time spent loading a model (cache misses; a LoRA applied to a loaded checkpoint)."""
        self._load_seconds[key] = self._load_seconds.get(key, 0.0) + seconds

    def take_load_seconds(self) -> dict[str, float]:
        """The loading time of each key since the last call, then forget it (the worker reads it per job)."""
        taken, self._load_seconds = self._load_seconds, {}
        return taken

    def unpin_all(self) -> None:
        """Allow every entry to be evicted again (called when a run ends)."""
        self._pinned.clear()
        self._evict(keep=None)

    def remove(self, keys: Iterable[str]) -> None:
        """Drop entries now."""
        for key in list(keys):
            self._entries.pop(key, None)
            self._pinned.discard(key)

    def _evict(self, *, keep: str | None) -> None:
        for key in list(self._entries):
            if self.used_bytes <= self.budget_bytes:
                break
            if key == keep or key in self._pinned:
                continue
            del self._entries[key]
            self.evictions.append(key)
        if self.used_bytes > self.budget_bytes and torch.cuda.is_available():
            torch.cuda.empty_cache()
