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
    """`<dir>/<sha256>` files; partial downloads live in `<sha256>.part` and resume.

    `link_from`: a directory of `<sha256>` files on this host (a local object store's `models/`): a model found
    there is hard-linked into the cache (no second copy on disk) and verified by sha256 like a download; when
    the link is impossible (another filesystem, no permission) or the file is not the right one, the model is
    downloaded as usual."""

    def __init__(self, directory: Path, *, max_bytes: int | None = None, link_from: Path | None = None) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.link_from = link_from

    def path(self, sha256: str) -> Path:
        return self.directory / sha256

    def ensure(self, sha256: str, *, size: int, fetch: Callable[[int], Iterator[bytes]]) -> Path:
        """The local path of a verified copy, downloading (or resuming) when missing."""
        final = self.path(sha256)
        if final.exists() and final.stat().st_size == size:
            os.utime(final)  # LRU by access time
            return final
        if self.link_from is not None and self._link(sha256, size=size, final=final):
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

    def _link(self, sha256: str, *, size: int, final: Path) -> bool:
        """Hard-link `link_from/<sha256>` as `final` when it is there, linkable and hashes right."""
        source = self.link_from / sha256
        try:
            if source.stat().st_size != size:
                return False
            linked = final.with_suffix(".link")
            linked.unlink(missing_ok=True)
            os.link(source, linked)
        except OSError as exc:  # missing, another filesystem (EXDEV), not permitted: download instead
            log.info("cannot link %s from %s (%s); downloading it", sha256[:12], self.link_from, exc)
            return False
        digest = hashlib.sha256()
        with linked.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            linked.unlink(missing_ok=True)
            log.warning("%s in %s hashed to %s…; downloading it", sha256[:12], self.link_from, digest.hexdigest()[:12])
            return False
        linked.rename(final)
        log.info("linked %s from %s", sha256[:12], self.link_from)
        return True

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
