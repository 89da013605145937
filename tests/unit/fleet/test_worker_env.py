"""Local replicas start with an allow-listed environment, never the server's secrets (issue 11)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from sdfleet.fleet.local_launcher import LocalLauncher, ReplicaSpec
from sdfleet.fleet.worker_env import worker_environment

SECRETS = {
    "SDFLEET_ADMIN_PASSWORD": "admin-secret",
    "SDFLEET_DATABASE_URL": "postgresql://sdfleet:dbpass@db/sdfleet",
    "SDFLEET_S3_SECRET_ACCESS_KEY": "s3-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "HF_TOKEN": "hf_secret",
    "SDFLEET_SMTP_PASSWORD": "smtp-secret",
}
KEPT = {"CUDA_VISIBLE_DEVICES": "0", "HF_HOME": "/tmp/hf-home", "SDFLEET_WORKER_THREADS": "1", "LC_ALL": "C.UTF-8"}


def test_worker_environment_keeps_the_allow_list_and_drops_secrets() -> None:
    parent = {**SECRETS, **KEPT, "PATH": "/usr/bin", "SOMETHING_ELSE": "x"}
    env = worker_environment(parent, token="sfw_tok", extra={"SDFLEET_MAX_IMAGE_PIXELS": "4096"})
    assert env == {**KEPT, "PATH": "/usr/bin", "SDFLEET_WORKER_TOKEN": "sfw_tok", "SDFLEET_MAX_IMAGE_PIXELS": "4096"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/environ")
def test_a_launched_replica_does_not_inherit_the_servers_secrets(tmp_path: Path, monkeypatch) -> None:
    for name, value in {**SECRETS, **KEPT}.items():
        monkeypatch.setenv(name, value)
    launcher = LocalLauncher(stop_timeout=5.0, shutdown_grace=1.0)
    # A server nobody listens on: the replica only has to exist long enough to read its environment.
    spec = ReplicaSpec(name="env-check", server_url=f"http://127.0.0.1:{_free_port()}", token="sfw_test",
                       device="cpu", cache_dir=tmp_path / "cache", extra_env={"SDFLEET_MAX_IMAGE_PIXELS": "65536"})
    launcher.launch(spec)
    try:
        pid = launcher.pids()["env-check"]
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        launcher.stop()
    env = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    assert not set(SECRETS) & set(env), f"secrets reached the worker: {sorted(set(SECRETS) & set(env))}"
    assert not any(value in raw.decode() for value in SECRETS.values())
    assert env["SDFLEET_WORKER_TOKEN"] == "sfw_test"
    assert env["SDFLEET_MAX_IMAGE_PIXELS"] == "65536"
    assert {name: env.get(name) for name in KEPT} == KEPT
    assert env["PATH"] == os.environ["PATH"]
