"""A model download cut off mid-transfer is retried, resuming the `.part` file by Range, while the lease holds."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from sdfleet.worker.client import LeaseLost
from sdfleet.worker.model_cache import ModelFileCache
from sdfleet.worker.model_fetch import fetch_model

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


class FlakyServer:
    """Answers model downloads from `offset`, dropping the first `drops` of them after `cut_at` bytes."""

    def __init__(self, *, drops: int, cut_at: int = 100_000) -> None:
        self.drops = drops
        self.cut_at = cut_at
        self.offsets: list[int] = []

    def stream_model(self, sha256: str, *, offset: int = 0):
        assert sha256 == SHA
        self.offsets.append(offset)
        if len(self.offsets) <= self.drops:
            yield DATA[offset:self.cut_at]
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
        yield DATA[offset:]


def fetch(tmp_path, server, *, lease_lost=lambda: False, retries: int = 20, stopping: bool = False):
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return stopping

    path = fetch_model(cache=ModelFileCache(tmp_path / "cache"), client=server, job_id="job-1", sha256=SHA,
                       size=len(DATA), lease_lost=lease_lost, wait=wait, retries=retries)
    return path, waits


def test_a_dropped_download_resumes_where_it_stopped(tmp_path):
    server = FlakyServer(drops=1)
    path, waits = fetch(tmp_path, server)
    assert path.read_bytes() == DATA and not path.with_suffix(".part").exists()
    assert server.offsets == [0, 100_000] and waits == [1.0]


def test_retries_give_up_and_keep_the_part_file(tmp_path):
    server = FlakyServer(drops=3)
    with pytest.raises(httpx.TransportError):
        fetch(tmp_path, server, retries=2)
    assert server.offsets == [0, 100_000, 100_000]
    # What arrived stays in `.part` for the job's next attempt.
    assert (tmp_path / "cache" / f"{SHA}.part").read_bytes() == DATA[:100_000]


def test_a_lost_lease_ends_the_retries(tmp_path):
    with pytest.raises(LeaseLost):
        fetch(tmp_path, FlakyServer(drops=5), lease_lost=lambda: True)


def test_a_stopping_worker_does_not_retry(tmp_path):
    server = FlakyServer(drops=5)
    with pytest.raises(httpx.TransportError):
        fetch(tmp_path, server, stopping=True)
    assert server.offsets == [0]
