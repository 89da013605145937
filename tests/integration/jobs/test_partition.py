"""A worker behind a TCP proxy the test controls: a network partition mid-job expires its lease, another worker
completes the job; when the link heals, the first worker's late work is refused (fencing) and it claims again.
A partition in the middle of a model download: the worker resumes its `.part` file by Range once the link heals.

The far worker is also paused (SIGSTOP) while cut off, so that it is still mid-job when the link heals whatever
the speed of the machine; a download is frozen by the proxy at a byte count before the cut: the test waits for
states, never for a duration."""

from __future__ import annotations

import hashlib
import os
import re
import signal

import httpx
import pytest

from sdfleet.store.jobs import SqlJobQueue
from tests.fixtures.live import start_fleet
from tests.fixtures.tcp_proxy import TcpProxy
from tests.integration.endpoints.test_autoscaling_e2e import SMALL, submit, until

pytestmark = pytest.mark.timeout(600)
MiB = 1 << 20


def _job(fleet, headers, job_id) -> dict:
    return httpx.get(f"{fleet.url}/api/v1/inferences/{job_id}", headers=headers).json()


def _log(fleet, name) -> str:
    path = fleet.tmp / f"worker-{name}.log"
    return path.read_text() if path.exists() else ""


def test_a_cut_link_expires_the_lease_and_the_late_completion_is_refused(fleet):
    proxy = TcpProxy(fleet.server.port)
    try:
        admin = fleet.login()
        far = fleet.start_worker("far", server_url=proxy.url)
        job_id = submit(fleet, admin, {**SMALL, "width": 128, "height": 128, "steps": 60})
        until(lambda: _job(fleet, admin, job_id)["progress"]["value"] >= 1, timeout=240,
              what="the far worker to be sampling", step=0.05)

        # 1. Cut the link mid-job: the lease expires (4 s), the job is requeued, a near worker completes it.
        fleet.start_worker("near")
        proxy.cut()
        os.kill(far.pid, signal.SIGSTOP)
        queue = SqlJobQueue(fleet.server.runtime.database)
        until(lambda: [e for e in queue.events_after(job_id, 0) if e.type.value == "requeued"], timeout=120,
              what="the lease to expire")
        until(lambda: _job(fleet, admin, job_id)["attempts"] == 2, timeout=120, what="the near worker's claim")

        job = fleet.wait(admin, job_id, timeout=300)
        assert job["status"] == "succeeded" and job["attempts"] == 2 and len(job["outputs"]) == 1, job

        # 2. Heal the link; the far worker resumes its stale attempt: the server refuses it and it drops it.
        proxy.restore()
        os.kill(far.pid, signal.SIGCONT)
        until(lambda: "lease lost; dropping it" in _log(fleet, "far"), timeout=300,
              what="the far worker's late work to be refused")
        kinds = [e.type.value for e in queue.events_after(job_id, 0)]
        assert kinds.count("succeeded") == 1 and kinds[-1] == "succeeded", kinds
        assert _job(fleet, admin, job_id)["outputs"] == job["outputs"]  # the late attempt added nothing

        # 3. The far worker goes back to claiming: with the near one gone, it runs the next job.
        fleet.workers[-1].kill()
        fleet.workers[-1].wait(timeout=10)
        fleet.server.runtime.services.workers.revoke(fleet.worker_ids["near"])
        again = fleet.wait(admin, submit(fleet, admin, SMALL), timeout=300)
        assert again["status"] == "succeeded", again
    finally:
        proxy.close()


@pytest.fixture
def long_lease_fleet(tmp_path, demo_files):
    """A fleet whose leases (30 s) outlast a short cut on a busy machine: the download resumes in the same attempt."""
    fleet = start_fleet(tmp_path, demo_files, lease_seconds=30.0)
    yield fleet
    fleet.stop()


def test_a_cut_mid_model_download_resumes_the_part_file_by_range(long_lease_fleet, demo_files):
    fleet = long_lease_fleet
    model = demo_files["demo-sd15"].read_bytes()
    sha256, size = hashlib.sha256(model).hexdigest(), len(model)
    assert size > 4 * MiB, "the demo checkpoint must be big enough for a cut after 3 MiB to land mid-transfer"
    proxy = TcpProxy(fleet.server.port)
    try:
        admin = fleet.login()
        # 1. The server's answers through the proxy freeze at 3 MiB: only the model stream is that long.
        proxy.hold_after(3 * MiB)
        far = fleet.start_worker("far", server_url=proxy.url)
        job_id = submit(fleet, admin, SMALL)
        assert proxy.holding.wait(timeout=240), "the far worker never downloaded the model"

        # 2. Cut the link mid-download: the worker keeps what it got in `.part` and retries.
        proxy.cut()
        until(lambda: f"download of model {sha256[:12]} interrupted" in _log(fleet, "far"), timeout=120,
              what="the far worker to see its download cut")
        part = fleet.tmp / "cache-far" / f"{sha256}.part"
        assert 3 * MiB - 64 * 1024 <= part.stat().st_size < size  # what crossed the link before the cut, kept
        sent_before, part_size = proxy.bytes_down, part.stat().st_size

        # 3. Heal it: the download resumes by Range, the file verifies, the job completes once, in its first attempt.
        proxy.restore()
        job = fleet.wait(admin, job_id, timeout=300)
        assert job["status"] == "succeeded" and job["attempts"] == 1 and len(job["outputs"]) == 1, job
        assert job["model"] == "demo-sd15.safetensors"
        sent = proxy.requests_text()
        assert len(re.findall(rf"GET /api/v1/worker/models/{sha256} ", sent)) == 2, sent[-2000:]
        [offset] = (int(n) for n in re.findall(r"(?im)^range: bytes=(\d+)-", sent))
        assert offset == part_size
        assert f"resuming {sha256[:12]} at {offset} of {size} bytes" in _log(fleet, "far")
        # Only the rest came again (plus a little of the worker's other traffic), not the whole file.
        assert proxy.bytes_down - sent_before < size - offset + 256 * 1024
        cached = fleet.tmp / "cache-far" / sha256
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha256 and not part.exists()
        kinds = [e.type.value for e in SqlJobQueue(fleet.server.runtime.database).events_after(job_id, 0)]
        assert kinds.count("succeeded") == 1 and "requeued" not in kinds, kinds
        assert far.poll() is None
    finally:
        proxy.close()
