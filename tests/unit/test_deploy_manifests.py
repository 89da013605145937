"""deploy/kubernetes stays valid YAML naming only settings, options, routes and metrics sdfleet has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml

from sdfleet.cli import app
from sdfleet.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"


@pytest.fixture(scope="module")
def docs() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def _worker_command() -> typer.main.click.Command:
    return typer.main.get_command(app).commands["worker"]  # type: ignore[attr-defined]


def _envvars_sdfleet_reads() -> set[str]:
    settings = {f"SDFLEET_{name.upper()}" for name in Settings.model_fields}
    worker = {p.envvar for p in _worker_command().params if isinstance(p.envvar, str)}
    return settings | worker


def _env_names(container: dict) -> set[str]:
    return {e["name"] for e in container.get("env", []) if e["name"].startswith("SDFLEET_")}


def test_every_manifest_parses_and_has_the_expected_objects(docs):
    assert set(docs) == {("Deployment", "sdfleet-server"), ("Service", "sdfleet-server"),
                         ("Deployment", "sdfleet-worker-gpu"), ("ScaledObject", "sdfleet-worker-gpu")}


def test_the_server_runs_serve_with_settings_sdfleet_reads_behind_its_service(docs):
    server = docs[("Deployment", "sdfleet-server")]
    pod = server["spec"]["template"]
    assert server["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["sdfleet", "serve"]
    names = _env_names(container)
    assert names - _envvars_sdfleet_reads() == set(), "settings sdfleet does not read"
    assert {"SDFLEET_DATABASE_URL", "SDFLEET_STORAGE_URL", "SDFLEET_SECRET_KEY", "SDFLEET_PUBLIC_URL"} <= names
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["SDFLEET_PORT"]) == port["http"] and env["SDFLEET_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/health"

    service = docs[("Service", "sdfleet-server")]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_worker_asks_for_a_gpu_and_runs_sdfleet_worker_with_real_options(docs):
    worker = docs[("Deployment", "sdfleet-worker-gpu")]
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    argv = shlex.split(container["command"][-1].split("exec ", 1)[1])
    assert argv[:2] == ["sdfleet", "worker"]
    options = {opt for p in _worker_command().params for opt in p.opts}
    assert {a for a in argv if a.startswith("--")} <= options
    assert _env_names(container) - _envvars_sdfleet_reads() == set()
    assert "SDFLEET_DATABASE_URL" not in _env_names(container)  # a worker never sees the database
    (register,) = pod["initContainers"]
    assert "sdfleet workers create" in register["command"][-1] and "--endpoint gpu" in register["command"][-1]
    assert pod["terminationGracePeriodSeconds"] > int(
        {e["name"]: e.get("value") for e in container["env"]}["SDFLEET_DRAIN_SECONDS"])


def test_keda_scales_the_worker_deployment_on_a_metric_sdfleet_exports(docs):
    scaled = docs[("ScaledObject", "sdfleet-worker-gpu")]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "sdfleet-worker-gpu"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    metric = re.match(r"max\((\w+)\{endpoint=\"gpu\"\}\)", trigger["metadata"]["query"]).group(1)
    exported = "\n".join(p.read_text() for p in (ROOT / "sdfleet").rglob("*.py"))
    assert f'"{metric}"' in exported, f"{metric} is not a metric sdfleet exports"
    assert float(trigger["metadata"]["threshold"]) > 0 and scaled["spec"]["minReplicaCount"] == 0
