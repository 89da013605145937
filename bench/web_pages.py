"""Web UI page-ready times in Chromium: Generate and Gallery for a user with 500 finished jobs, against the
same pages for a user with none (same server, same run), and the image bytes a gallery page loads with
thumbnails against the full PNGs it loaded before.

Page ready = navigation start → the page's data rendered (`body[data-ready]`) and every image in view loaded.
Jobs are finished through the worker protocol with 512×512 PNGs (no engine), so the figures measure the web UI
and the API, not generation."""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

READY = """() => document.body.dataset.ready === 'yes'
    && [...document.querySelectorAll('main img')].filter((i) => i.getBoundingClientRect().top < innerHeight)
       .every((i) => i.complete)"""


def noisy_png(seed: int, size: int = 512) -> bytes:
    """A PNG the size of a real output (noise does not compress)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def fill(server_url: str, runtime, headers: dict, count: int) -> None:
    """Submit `count` txt2img jobs and finish each through the worker protocol with one 512×512 output."""
    token = runtime.services.workers.register(name="bench", endpoint="default").token
    pngs = [noisy_png(i) for i in range(8)]
    with httpx.Client(base_url=server_url, timeout=60) as http:
        worker = {"Authorization": f"Bearer {token}"}
        for i in range(count):
            r = http.post("/api/v1/inferences", headers=headers, json={"task": "txt2img", "params": {
                "prompt": f"a lighthouse on a cliff, study {i}", "steps": 20, "width": 512, "height": 512,
                "seed": i}})
            r.raise_for_status()
            held = http.post("/api/v1/worker/claim", headers=worker, json={"wait_seconds": 0}).json()
            http.put(f"/api/v1/worker/jobs/{held['id']}/outputs/0", params={"fencing_token": held["fencing_token"]},
                     headers=worker, content=pngs[i % len(pngs)]).raise_for_status()
            http.post(f"/api/v1/worker/jobs/{held['id']}/complete", headers=worker, json={
                "fencing_token": held["fencing_token"], "outputs": [{"index": 0, "node_id": "save0"}]}
            ).raise_for_status()


def page_ready_ms(page, url: str, runs: int) -> float:
    """Median navigation → ready time over `runs` warm loads (one unmeasured load first)."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function(READY, timeout=60_000)
        if i:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def image_bytes(page, url: str) -> int:
    """Bytes of the images a page fetched while loading (transfer sizes from the resource timing API)."""
    page.goto(url)
    page.wait_for_function(READY, timeout=60_000)
    return page.evaluate("""() => performance.getEntriesByType('resource')
        .filter((e) => e.initiatorType === 'img').reduce((n, e) => n + (e.encodedBodySize || 0), 0)""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from sdfleet.engine.demo import create_demo_files
    from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS
    from tests.fixtures.live import LiveServer, register_demo
    from tests.fixtures.runtime import ADMIN_PASSWORD, make_runtime

    tmp = Path(tempfile.mkdtemp(prefix="sdfleet-bench-web-"))
    runtime = make_runtime(tmp, max_queued_per_user=100_000)
    register_demo(runtime, {f.name: f.path for f in create_demo_files(tmp / "demo")})
    server = LiveServer(runtime).start()
    try:
        admin = httpx.post(f"{server.url}/api/v1/auth/login",
                           json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {admin}"}
        httpx.post(f"{server.url}/api/v1/users", headers=headers,
                   json={"username": "empty", "password": "empty-password-1", "roles": ["artist"]}).raise_for_status()
        started = time.perf_counter()
        fill(server.url, runtime, headers, args.jobs)
        print(f"filled {args.jobs} finished jobs in {time.perf_counter() - started:.1f} s")
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            for label, path in (("recent jobs (Generate)", "/api/v1/inferences?limit=8"),
                                ("gallery page", "/api/v1/gallery?limit=24"),
                                ("gallery search", "/api/v1/gallery?limit=24&q=lighthouse+study+49"),
                                ("queue positions", "/api/v1/queue")):
                samples = []
                for _ in range(21):
                    t = time.perf_counter()
                    http.get(path).raise_for_status()
                    samples.append((time.perf_counter() - t) * 1000)
                print(f"  API {label:24s} median {statistics.median(samples):5.1f} ms")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            results = {}
            for user, password in (("empty", "empty-password-1"), ("admin", ADMIN_PASSWORD)):
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                page = context.new_page()
                page.goto(f"{server.url}/login")
                page.fill("#username", user)
                page.fill("#password", password)
                page.click("button[type=submit]")
                page.wait_for_url(f"{server.url}/")
                if user == "admin":  # the first view makes the thumbnails; measure warm pages after it
                    cold_start = time.perf_counter()
                    page.goto(f"{server.url}/gallery")
                    page.wait_for_function(READY, timeout=120_000)
                    results["gallery cold"] = (time.perf_counter() - cold_start) * 1000
                for name, path in (("Generate", "/"), ("Gallery", "/gallery")):
                    results[(name, user)] = page_ready_ms(page, f"{server.url}{path}", args.runs)
                if user == "admin":
                    thumbs = image_bytes(page, f"{server.url}/gallery")
                    results["thumb bytes"] = thumbs
                context.close()
            browser.close()
        print(f"page ready, median of {args.runs} warm loads, 1440×900 (2-core CPU, no GPU):")
        for name in ("Generate", "Gallery"):
            empty, full = results[(name, "empty")], results[(name, "admin")]
            print(f"  {name:9s} no jobs {empty:6.0f} ms   {args.jobs} jobs {full:6.0f} ms   ratio {full / empty:.2f}")
        print(f"  Gallery first view ({args.jobs} jobs, thumbnails made): {results['gallery cold']:.0f} ms")
        full_page = 24 * len(noisy_png(0))
        print(f"gallery page images: thumbnails {results['thumb bytes'] / 1024:.0f} KiB vs full PNGs "
              f"{full_page / 1024:.0f} KiB for the same 24 jobs (ratio {results['thumb bytes'] / full_page:.3f})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
