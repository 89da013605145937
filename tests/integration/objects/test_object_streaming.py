"""Large objects stream through put/open_range with bounded memory (local directory and S3 on moto)."""

from __future__ import annotations

import hashlib
import io
import random
import time
import tracemalloc
from pathlib import Path

import pytest

from sdfleet.objects.base import ObjectStore
from sdfleet.objects.local import LocalObjectStore
from sdfleet.objects.s3 import S3ObjectStore
from sdfleet.objects.signing import UrlSigner

OBJECT_SIZE = 64 * 1024 * 1024
#: Peak Python allocation allowed while moving OBJECT_SIZE bytes: about one S3 part plus its copy.
MEMORY_BUDGET = 24 * 1024 * 1024


class GeneratedStream(io.RawIOBase):
    """A non-seekable stream of `size` pseudo-random bytes made on the fly, hashing what it hands out."""

    def __init__(self, size: int, *, seed: int) -> None:
        self._remaining = size
        self._random = random.Random(seed)
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        count = self._remaining if size < 0 else min(size, self._remaining)
        chunk = self._random.randbytes(count)
        self._remaining -= count
        self.sha256.update(chunk)
        return chunk


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def large_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The two real backends."""
    if request.param == "local":
        return LocalObjectStore(
            root=tmp_path / "objects",
            signer=UrlSigner(secret_key=b"streaming-test-secret", public_base_url="http://t"),
        )
    return request.getfixturevalue("s3_store")


def test_64_mib_object_streams_in_and_out_with_bounded_memory(large_store: ObjectStore) -> None:
    source = GeneratedStream(OBJECT_SIZE, seed=11)

    tracemalloc.start()
    try:
        started = time.perf_counter()
        info = large_store.put("models/large", source)
        put_s = time.perf_counter() - started
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        started = time.perf_counter()
        digest = hashlib.sha256()
        received = 0
        for chunk in large_store.open_range("models/large"):
            digest.update(chunk)
            received += len(chunk)
        get_s = time.perf_counter() - started
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    print(f"\n{type(large_store).__name__}: 64 MiB put {put_s:.2f} s (peak {put_peak / 2**20:.1f} MiB), "
          f"get {get_s:.2f} s (peak {get_peak / 2**20:.1f} MiB)")
    assert info.size == OBJECT_SIZE
    assert received == OBJECT_SIZE
    assert digest.hexdigest() == source.sha256.hexdigest()
    assert put_peak < MEMORY_BUDGET, f"put peaked at {put_peak / 2**20:.1f} MiB"
    assert get_peak < MEMORY_BUDGET, f"open_range peaked at {get_peak / 2**20:.1f} MiB"


def test_ranged_reads_of_a_large_object_return_exact_bytes(large_store: ObjectStore) -> None:
    size = 12 * 1024 * 1024 + 321  # more than one S3 part
    data = random.Random(5).randbytes(size)
    large_store.put("models/ranged", io.BytesIO(data))

    mib = 1024 * 1024
    for start, end in [(0, 99), (8 * mib - 10, 8 * mib + 10), (size - 5, None), (777, size + 99)]:
        got = b"".join(large_store.open_range("models/ranged", start=start, end=end, chunk_size=64 * 1024))
        assert got == data[start : None if end is None else end + 1], (start, end)


@pytest.mark.s3
def test_s3_put_of_a_large_stream_uses_multipart(s3_store: S3ObjectStore, moto_s3_client) -> None:
    size = 2 * 8 * 1024 * 1024 + 5
    info = s3_store.put("models/multi", GeneratedStream(size, seed=1))

    assert info.size == size
    assert info.etag is not None and info.etag.endswith("-3")  # three parts of 8 MiB, 8 MiB, 5 bytes
    uploads = moto_s3_client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", [])
    assert uploads == []


@pytest.mark.s3
def test_s3_put_that_fails_mid_stream_aborts_its_upload(s3_store: S3ObjectStore, moto_s3_client) -> None:
    class Broken(GeneratedStream):
        def read(self, size: int = -1) -> bytes:
            if self._remaining < 4 * 1024 * 1024:
                raise OSError("client went away")
            return super().read(size)

    with pytest.raises(OSError, match="client went away"):
        s3_store.put("models/broken", Broken(20 * 1024 * 1024, seed=2))

    assert not s3_store.exists("models/broken")
    assert moto_s3_client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []
