"""A job's model file into the worker's cache, through a network that fails: a dropped connection is retried, each
try resuming the cache's `.part` file by Range (the cache verifies the whole file's sha256), while the lease holds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx

from sdfleet.worker.client import LeaseLost, WorkerClient
from sdfleet.worker.model_cache import ModelFileCache

log = logging.getLogger("sdfleet.worker")

#: tries after the first, waiting 1, 2, 4 … 10 s between them (about three minutes in all)
MODEL_RETRIES = 20
MAX_DELAY_S = 10.0


def fetch_model(*, cache: ModelFileCache, client: WorkerClient, job_id: str, sha256: str, size: int,
                lease_lost: Callable[[], bool], wait: Callable[[float], bool], retries: int = MODEL_RETRIES) -> Path:
    """The verified local path of a model the job pins, downloading or resuming it.

    Args:
        lease_lost: whether the job's heartbeat found the lease gone (then LeaseLost: the job is another's now).
        wait: sleeps between tries; True when the worker is stopping (then the transport error is raised)."""
    delay, tries = 1.0, 0
    while True:
        try:
            return cache.ensure(sha256, size=size, fetch=lambda offset: client.stream_model(sha256, offset=offset))
        except httpx.TransportError as exc:
            tries += 1
            if tries > retries:
                raise
            log.warning("job %s: download of model %s interrupted (%s); resuming in %.0f s", job_id, sha256[:12], exc,
                        delay)
            stopping = wait(delay)
            if lease_lost():
                raise LeaseLost(job_id) from None
            if stopping:
                raise
            delay = min(delay * 2, MAX_DELAY_S)
