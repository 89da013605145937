"""Cold start vs warm replica: one txt2img (tiny model, CPU) on an endpoint scaled to zero, and on a warm one.

A live server (SQLite + local objects) runs the fleet manager with the real local launcher. For each cold
run the endpoint has scaled to zero; the job's arrival makes the autoscaler start a replica (a new
`sdfleet worker` process: Python + torch import, model download into an empty cache, model load). Warm runs
go to the replica that is already up. Times are from POST /api/v1/inferences to the job's first
`progress` event (first sampler step) and to its `succeeded` event plus the image download, read from
the SSE stream. Prints medians and cold/warm ratios."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARAMS = {"prompt": "a red cube", "steps": 8, "width": 64, "height": 64, "cfg_scale": 5, "sampler_name": "Euler"}
ENDPOINT = "bench"


def timed_job(client: httpx.Client, seed: int) -> tuple[float, float]:
    """(seconds to the first sampler step, seconds to the downloaded image) of one job."""
    start = time.perf_counter()
    r = client.post("/api/v1/inferences", json={"task": "txt2img", "params": {**PARAMS, "seed": seed},
                                                "endpoint": ENDPOINT})
    r.raise_for_status()
    job_id = r.json()["id"]
    first_step = None
    with client.stream("GET", f"/api/v1/inferences/{job_id}/events", timeout=300) as events:
        for line in events.iter_lines():
            if line == "event: progress" and first_step is None:
                first_step = time.perf_counter() - start
            if line in ("event: failed", "event: cancelled"):
                raise RuntimeError(f"job {job_id}: {line[7:]}")
            if line == "event: succeeded":
                break
    job = client.get(f"/api/v1/inferences/{job_id}").json()
    client.get(job["outputs"][0]["url"]).raise_for_status()
    done = time.perf_counter() - start
    return (first_step if first_step is not None else done), done


def wait_for_zero(client: httpx.Client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        endpoint = client.get(f"/api/v1/endpoints/{ENDPOINT}").json()
        if endpoint["desired_replicas"] == 0 and not endpoint["replicas"]:
            return
        time.sleep(0.2)
    raise RuntimeError("the endpoint did not scale to zero")


def main() -> None:
    """Print cold and warm medians (first step, image) and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", type=int, default=2, help="cold runs (each waits for scale to zero)")
    parser.add_argument("--warm", type=int, default=5, help="warm runs after each cold run")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    args = parser.parse_args()

    from sdfleet.engine.demo import create_demo_files
    from tests.fixtures.live import start_fleet

    tmp = Path(tempfile.mkdtemp(prefix="sdfleet-bench-"))
    demo = {f.name: f.path for f in create_demo_files(tmp / "demo")}
    fleet = start_fleet(tmp / "fleet", demo)
    try:
        client = httpx.Client(base_url=fleet.url, headers=fleet.login(), timeout=60)
        client.post("/api/v1/endpoints", json={
            "name": ENDPOINT, "devices": ["cpu"], "min_replicas": 0, "max_replicas": 1,
            "idle_seconds": args.idle_seconds}).raise_for_status()
        cold, warm = [], []
        seed = 0
        for _ in range(args.cold):
            wait_for_zero(client)
            seed += 1
            cold.append(timed_job(client, seed))
            for _ in range(args.warm):
                seed += 1
                warm.append(timed_job(client, seed))
        for label, runs in (("cold (scaled to zero)", cold), ("warm replica", warm)):
            print(f"{label:22s} n={len(runs):2d}  first step {statistics.median(r[0] for r in runs):7.2f} s"
                  f"  image {statistics.median(r[1] for r in runs):7.2f} s")
        first = statistics.median(r[0] for r in cold) / statistics.median(r[0] for r in warm)
        image = statistics.median(r[1] for r in cold) / statistics.median(r[1] for r in warm)
        print(f"cold / warm: first step ×{first:.1f}, image ×{image:.1f}")
        events = client.get(f"/api/v1/endpoints/{ENDPOINT}/events", params={"limit": 500}).json()["items"]
        print("scale decisions:", [e["data"]["to"] for e in events if e["type"] == "scale"])
    finally:
        fleet.server.stop()
        fleet.server.runtime.database.dispose()


if __name__ == "__main__":
    main()
