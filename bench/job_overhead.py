"""What the fleet adds to one txt2img: the engine in-process vs the same job through the API and a worker.

(a) Engine.run in this process; (b) POST /api/v1/inferences to a live server (SQLite + local objects),
run by a real `sdfleet worker` subprocess, waited for through the job's SSE stream, output downloaded.
20 sequential runs each after warm-up; prints p50/p95 of (b) − (a) in ms and (b)/(a), and the submission
alone (the POST's round trip: validation, model resolution, queueing). Goal on the 2-core CPU machine: ≤ 30 ms
p50 overhead with SQLite. Different seeds every run (no output cache)."""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RUNS = 20
PARAMS = {"prompt": "a red cube", "steps": 8, "width": 64, "height": 64, "cfg_scale": 5, "sampler_name": "Euler"}


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wait_sse(client: httpx.Client, job_id: str) -> None:
    with client.stream("GET", f"/api/v1/inferences/{job_id}/events", timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("event: ") and line[7:] in ("succeeded", "failed", "cancelled"):
                if line[7:] != "succeeded":
                    raise RuntimeError(f"job {job_id} {line[7:]}")
                return


def main() -> None:
    from sdfleet.engine.demo import create_demo_files
    from sdfleet.engine.executor import Engine
    from sdfleet.engine.files import DictModelFiles, ModelFile
    from tests.fixtures.live import start_fleet

    tmp = Path(tempfile.mkdtemp(prefix="sdfleet-bench-"))
    demo = {f.name: f.path for f in create_demo_files(tmp / "demo")}
    fleet = start_fleet(tmp / "fleet", demo)
    try:
        client = httpx.Client(base_url=fleet.url, headers=fleet.login(), timeout=60)
        fleet.start_worker("bench")
        # The in-process baseline runs the same graph the server compiles for these parameters.
        graphs = fleet.server.runtime.services.graphs
        graph = graphs.compile_a1111("txt2img", {**PARAMS, "seed": 1}, default_checkpoint="demo-sd15.safetensors",
                                     input_images=[], mask_image=None, lora_names=[]).graph
        files = DictModelFiles()
        for name, path in demo.items():
            folder = "loras" if "lora" in name else "checkpoints"
            files.add_model(folder, path.name, ModelFile(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
        engine = Engine(device="cpu")

        def run_inprocess(seed: int) -> float:
            g = json.loads(json.dumps(graph))
            for node in g.values():  # KSampler, KSamplerA1111 …: every sampler's seed, so nothing is cached
                if "seed" in node["inputs"]:
                    node["inputs"]["seed"] = seed
            t = time.perf_counter()
            engine.run(g, files=files)
            return time.perf_counter() - t

        submits: list[float] = []

        def run_fleet(seed: int) -> float:
            t = time.perf_counter()
            job = client.post("/api/v1/inferences", json={"task": "txt2img", "params": {**PARAMS, "seed": seed}}).json()
            submits.append(time.perf_counter() - t)
            wait_sse(client, job["id"])
            info = client.get(f"/api/v1/inferences/{job['id']}").json()
            client.get(info["outputs"][0]["url"]).raise_for_status()
            return time.perf_counter() - t

        for warm in range(3):
            run_inprocess(100 + warm)
            run_fleet(200 + warm)
        a, b = [], []
        submits.clear()
        for i in range(RUNS):  # interleaved so drift hits both alike
            a.append(run_inprocess(1000 + i))
            b.append(run_fleet(2000 + i))
        diffs = [(y - x) * 1000 for x, y in zip(sorted(a), sorted(b), strict=True)]
        print(f"engine in-process  p50 {statistics.median(a) * 1000:7.1f} ms  p95 {percentile(a, 95) * 1000:7.1f} ms")
        print(f"through the fleet  p50 {statistics.median(b) * 1000:7.1f} ms  p95 {percentile(b, 95) * 1000:7.1f} ms")
        print(f"overhead (b)-(a)   p50 {statistics.median(diffs):7.1f} ms  p95 {percentile(diffs, 95):7.1f} ms")
        print(f"ratio (b)/(a)      p50 {statistics.median(b) / statistics.median(a):.3f}")
        print(f"submission (POST)  p50 {statistics.median(submits) * 1000:7.1f} ms  "
              f"p95 {percentile(submits, 95) * 1000:7.1f} ms")
    finally:
        fleet.stop_workers()
        fleet.server.stop()


if __name__ == "__main__":
    main()
