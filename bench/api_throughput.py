"""API cost: authenticated GET /api/v1/inferences/{id} and POST /api/v1/inferences per second, next to a bare
FastAPI handler on the same server (one keep-alive client, sequential requests; SQLite)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N = 300


def rate(fn, n: int = N) -> float:
    for _ in range(20):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t)


def main() -> None:
    from sdfleet.engine.demo import create_demo_files
    from tests.fixtures.live import LiveServer, register_demo
    from tests.fixtures.runtime import make_runtime

    tmp = Path(tempfile.mkdtemp(prefix="sdfleet-bench-"))
    runtime = make_runtime(tmp, max_queued_per_user=100_000)
    register_demo(runtime, {f.name: f.path for f in create_demo_files(tmp / "demo")})
    server = LiveServer(runtime)
    server.server.config.app.add_api_route("/bench/bare", lambda: {"ok": True}, methods=["GET"])
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as anon:
            token = anon.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password-123"})
            key = anon.post("/api/v1/api-keys", json={"name": "bench"},
                            headers={"Authorization": f"Bearer {token.json()['token']}"}).json()["key"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            body = {"task": "txt2img", "params": {"prompt": "x", "steps": 2, "width": 64, "height": 64}}
            job_id = client.post("/api/v1/inferences", json=body).json()["id"]
            bare = rate(lambda: client.get("/bench/bare").raise_for_status())
            get = rate(lambda: client.get(f"/api/v1/inferences/{job_id}").raise_for_status())
            post = rate(lambda: client.post("/api/v1/inferences", json=body).raise_for_status(), n=100)
        print(f"bare handler        {bare:7.0f} req/s")
        print(f"GET inference       {get:7.0f} req/s  ({get / bare:.2f} of bare)")
        print(f"POST inference      {post:7.0f} req/s  ({post / bare:.2f} of bare)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
