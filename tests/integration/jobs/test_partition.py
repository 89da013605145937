"""A worker behind a TCP proxy the test controls: a network partition mid-job expires its lease, another worker
completes the job; when the link heals, the first worker's late work is refused (fencing) and it claims again.

The far worker is also paused (SIGSTOP) while cut off, so that it is still mid-job when the link heals whatever
the speed of the machine: the test waits for states, never for a duration."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from sdfleet.store.jobs import SqlJobQueue
from tests.fixtures.tcp_proxy import TcpProxy
from tests.integration.endpoints.test_autoscaling_e2e import SMALL, submit, until

pytestmark = pytest.mark.timeout(600)


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
