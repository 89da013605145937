"""The worker's local model files: downloaded once by sha256, verified, resumable, evicted by disk budget."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("sdfleet.worker.cache")


class HashMismatch(Exception):
    """A downloaded file did not hash to the sha256 it was fetched by."""


class ModelFileCache:
    """`<dir>/<sha256>` files; partial downloads live in `<sha256>.part` and resume."""

    def __init__(self, directory: Path, *, max_bytes: int | None = None) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes

    def path(self, sha256: str) -> Path:
        return self.directory / sha256

    def ensure(self, sha256: str, *, size: int, fetch: Callable[[int], Iterator[bytes]]) -> Path:
        """The local path of a verified copy, downloading (or resuming) when missing."""
        final = self.path(sha256)
        if final.exists() and final.stat().st_size == size:
            os.utime(final)  # LRU by access time
            return final
        part = final.with_suffix(".part")
        digest = hashlib.sha256()
        offset = part.stat().st_size if part.exists() else 0
        if offset > size:
            part.unlink()
            offset = 0
        if offset:
            with part.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            log.info("resuming %s at %d of %d bytes", sha256[:12], offset, size)
        self._make_room(size - offset)
        with part.open("ab") as f:
            for chunk in fetch(offset):
                f.write(chunk)
                digest.update(chunk)
            f.flush()
            os.fsync(f.fileno())
        if digest.hexdigest() != sha256:
            part.unlink(missing_ok=True)
            raise HashMismatch(f"model {sha256[:12]}… hashed to {digest.hexdigest()[:12]}…; discarded")
        part.rename(final)
        return final

    def _make_room(self, needed: int) -> None:
        if self.max_bytes is None:
            return
        files = sorted((p for p in self.directory.iterdir() if p.is_file() and p.suffix != ".part"),
                       key=lambda p: p.stat().st_atime)
        used = sum(p.stat().st_size for p in files)
        while files and used + needed > self.max_bytes:
            victim = files.pop(0)
            used -= victim.stat().st_size
            victim.unlink(missing_ok=True)
            log.info("evicted %s from the model cache", victim.name[:12])
