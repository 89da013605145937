"""What loading a job's models cost the worker: per pinned model, where it came from (the engine's memory, the
file cache, a download) and the seconds spent fetching its file and loading it into the engine."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sdfleet.jobs.records import ModelLoad, ModelSource


def model_key_sha256(key: str) -> str:
    """The sha256 in an engine cache key: `<kind>:<sha256>` or `<kind>:<sha256>:<detail>` (an embedding's name)."""
    parts = key.split(":")
    return parts[1] if len(parts) > 1 else key


@dataclass
class _Fetch:
    on_disk: bool
    seconds: float


class ModelLoadTimer:
    """One job's model loads: what the engine held before the job, then each file's fetch, then the engine's loads.

    A model counts as a memory hit when the engine held it before the job and did not load it again; otherwise
    as a disk hit when its file was in the cache before the fetch, else as a download."""

    def __init__(self, *, in_memory: Iterable[str], clock: Callable[[], float] = time.perf_counter) -> None:
        self._in_memory = set(in_memory)
        self._clock = clock
        self._fetches: dict[str, _Fetch] = {}

    @contextmanager
    def fetching(self, sha256: str, *, on_disk: bool):
        """Time the fetch of one model file (a cached file takes a stat; a download takes its transfer)."""
        started = self._clock()
        try:
            yield
        finally:
            self._fetches[sha256] = _Fetch(on_disk=on_disk, seconds=self._clock() - started)

    def loads(self, engine_load_seconds: dict[str, float]) -> list[ModelLoad]:
        """Each fetched model's source and seconds, given what the engine spent loading each of its cache keys."""
        loaded: dict[str, float] = {}
        for key, seconds in engine_load_seconds.items():
            sha256 = model_key_sha256(key)
            loaded[sha256] = loaded.get(sha256, 0.0) + seconds
        records = []
        for sha256, fetch in self._fetches.items():
            if sha256 in self._in_memory and sha256 not in loaded:
                source = ModelSource.MEMORY
            elif fetch.on_disk:
                source = ModelSource.DISK
            else:
                source = ModelSource.DOWNLOAD
            records.append(ModelLoad(sha256=sha256, source=source,
                                     seconds=max(0.0, fetch.seconds + loaded.get(sha256, 0.0))))
        return records


def file_cached(path: Path, *, size: int) -> bool:
    """Whether the file cache holds a complete copy (as `ModelFileCache.ensure` decides before downloading)."""
    try:
        return path.stat().st_size == size
    except OSError:
        return False
