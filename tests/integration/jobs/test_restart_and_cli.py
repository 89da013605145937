"""Jobs survive a server restart; `sdfleet generate` drives the API end to end."""

import os
import subprocess
import sys

import httpx
from PIL import Image

from tests.fixtures.live import LiveServer, start_fleet
from tests.integration.jobs.test_inference_e2e import TXT2IMG, submit


def test_server_restart_with_jobs_queued_loses_nothing(tmp_path, demo_files):
    fleet = start_fleet(tmp_path, demo_files)
    admin = fleet.login()
    ids = [submit(fleet, admin, {"task": "txt2img", "params": {**TXT2IMG, "seed": i}}) for i in range(3)]
    fleet.server.stop()
    fleet.server.runtime.database.dispose()
    # A new server process on the same database and object store.
    from tests.fixtures.runtime import make_runtime

    runtime = make_runtime(tmp_path, lease_seconds=4.0)
    fleet.server = LiveServer(runtime).start()
    try:
        admin = fleet.login()
        listed = httpx.get(f"{fleet.url}/api/v1/inferences", headers=admin).json()["items"]
        assert sorted(j["id"] for j in listed) == sorted(ids) and {j["status"] for j in listed} == {"queued"}
        fleet.start_worker("after-restart")
        for job_id in ids:
            assert fleet.wait(admin, job_id)["status"] == "succeeded"
    finally:
        fleet.stop_workers()
        fleet.server.stop()
        runtime.database.dispose()


def test_generate_cli_writes_pngs(fleet, tmp_path):
    admin = fleet.login()
    key = httpx.post(f"{fleet.url}/api/v1/api-keys", headers=admin, json={"name": "cli"}).json()["key"]
    fleet.start_worker("cli")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "sdfleet.cli", "generate", "a small boat", "--steps", "3", "--width", "64",
         "--height", "64", "--seed", "9", "--out", str(out), "--server", fleet.url],
        env={**os.environ, "SDFLEET_API_KEY": key}, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.png"))
    assert len(files) == 1 and str(files[0]) in result.stdout
    assert "Seed: 9" in Image.open(files[0]).info["parameters"]
    bad = subprocess.run([sys.executable, "-m", "sdfleet.cli", "generate", "x", "--server", fleet.url],
                         env={k: v for k, v in os.environ.items() if k != "SDFLEET_API_KEY"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "API key" in bad.stderr
