"""A server with SDFLEET_RAY_ADDRESS but no `ray` endpoint neither imports ray nor needs its cluster: the Ray
launcher starts with the first endpoint that uses it (here the address points at nothing at all)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.fixtures.serve import start_serve


def loaded_ray(pid: int) -> bool:
    """Whether the process has ray's core extension mapped (`import ray` loads it)."""
    return "_raylet" in Path(f"/proc/{pid}/maps").read_text()


def test_a_server_without_ray_endpoints_never_imports_ray(tmp_path):
    server = start_serve(tmp_path, env={"SDFLEET_RAY_ADDRESS": "ray://127.0.0.1:9"})
    try:
        headers = {"Authorization": f"Bearer {server.token()}"}
        http = httpx.Client(timeout=60)  # the shared CI box can be slow to answer
        r = http.post(f"{server.url}/api/v1/endpoints", headers=headers, json={
            "name": "here", "devices": ["cpu"], "min_replicas": 0, "max_replicas": 1})
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 60
        while http.get(f"{server.url}/api/v1/endpoints/here", headers=headers).json()["status"] != "ready":
            assert time.monotonic() < deadline, "the local endpoint never became ready"
            time.sleep(0.3)
        time.sleep(1.5)  # a few more reconcile passes (0.5 s each)
        assert server.proc.poll() is None, server.log.read_text()[-3000:]
        assert not loaded_ray(server.proc.pid), "the server imported ray with no ray endpoint"
    finally:
        server.stop()
