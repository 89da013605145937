"""Model blobs of a local object store are hard-linked into the worker cache (verified by sha256), else fetched."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from sdfleet.worker.model_cache import ModelFileCache

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


def _fetch_counter(data: bytes):
    calls = []

    def fetch(offset: int):
        calls.append(offset)
        yield data[offset:]

    return fetch, calls


def test_a_blob_on_the_same_filesystem_is_linked_not_copied(tmp_path):
    store = tmp_path / "objects" / "models"
    store.mkdir(parents=True)
    (store / SHA).write_bytes(DATA)
    cache = ModelFileCache(tmp_path / "cache", link_from=store)
    fetch, calls = _fetch_counter(DATA)

    path = cache.ensure(SHA, size=len(DATA), fetch=fetch)

    assert calls == [] and path.read_bytes() == DATA
    assert path.stat().st_ino == (store / SHA).stat().st_ino and path.stat().st_nlink == 2
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [SHA]  # no .link / .part left
    assert cache.ensure(SHA, size=len(DATA), fetch=fetch) == path and calls == []


def test_a_blob_that_does_not_hash_right_is_downloaded_and_the_store_is_untouched(tmp_path):
    store = tmp_path / "models"
    store.mkdir()
    wrong = bytes(len(DATA))
    (store / SHA).write_bytes(wrong)
    cache = ModelFileCache(tmp_path / "cache", link_from=store)
    fetch, calls = _fetch_counter(DATA)

    path = cache.ensure(SHA, size=len(DATA), fetch=fetch)

    assert calls == [0] and path.read_bytes() == DATA and path.stat().st_nlink == 1
    assert (store / SHA).read_bytes() == wrong
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [SHA]


def test_a_missing_blob_or_one_of_another_size_is_downloaded(tmp_path):
    store = tmp_path / "models"
    store.mkdir()
    cache = ModelFileCache(tmp_path / "cache", link_from=store)
    fetch, calls = _fetch_counter(DATA)
    assert cache.ensure(SHA, size=len(DATA), fetch=fetch).read_bytes() == DATA and calls == [0]

    other = os.urandom(1000)
    other_sha = hashlib.sha256(other).hexdigest()
    (store / other_sha).write_bytes(other + b"x")  # size differs: not even linked
    fetch, calls = _fetch_counter(other)
    assert cache.ensure(other_sha, size=len(other), fetch=fetch).read_bytes() == other and calls == [0]


def test_across_filesystems_the_blob_is_copied_by_download(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to link across")
    with tempfile.TemporaryDirectory(dir=shm) as other_fs:
        (Path(other_fs) / SHA).write_bytes(DATA)
        cache = ModelFileCache(tmp_path / "cache", link_from=Path(other_fs))
        fetch, calls = _fetch_counter(DATA)
        path = cache.ensure(SHA, size=len(DATA), fetch=fetch)  # os.link fails with EXDEV
        assert calls == [0] and path.read_bytes() == DATA and path.stat().st_nlink == 1
