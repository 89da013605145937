"""The command line as a UI: one server/token pair for every command (old names still read), a name without
an extension takes the file's, and the bar says "verifying…" while the server checks the upload."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sdfleet import cli_models
from sdfleet.cli import app
from sdfleet.cli_models import name_with_extension, upload_file
from tests.integration.checkpoints.model_bytes import lora_bytes
from tests.integration.checkpoints.test_cli_models import _client


@pytest.mark.parametrize(("name", "file", "expected"), [
    ("realsd15", "model.safetensors", "realsd15.safetensors"),
    ("realsd15", "v1-5-pruned.ckpt", "realsd15.ckpt"),
    ("realsd15.safetensors", "model.safetensors", "realsd15.safetensors"),
    ("real.v2", "model.safetensors", "real.v2.safetensors"),
    ("realsd15", "model.weird", "realsd15"),
])
def test_a_name_without_extension_takes_the_files(tmp_path, name, file, expected):
    assert name_with_extension(name, tmp_path / file) == expected


def test_upload_names_and_says_verifying(api, admin, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    descriptions: list[str] = []

    class Recording(cli_models.Progress):
        def update(self, task, **kwargs):
            if "description" in kwargs:
                descriptions.append(kwargs["description"])
            return super().update(task, **kwargs)

    monkeypatch.setattr(cli_models, "Progress", Recording)
    path = tmp_path / "style-file.safetensors"
    path.write_bytes(lora_bytes())
    checkpoint = upload_file(_client(api, admin), path, model_type="Lora", name="realstyle", roles=None, server="t")
    assert checkpoint["name"] == "realstyle.safetensors" and checkpoint["allowed_roles"] == ["*"]
    assert descriptions == ["style-file.safetensors: verifying…", "style-file.safetensors: registered"]


@pytest.mark.parametrize("names", [("SDFLEET_URL", "SDFLEET_TOKEN"), ("SDFLEET_SERVER", "SDFLEET_API_KEY")],
                         ids=["documented", "old names"])
def test_every_command_reads_one_env_pair(fleet, names, monkeypatch):
    admin = fleet.login()
    key = fleet.client().post("/api/v1/api-keys", headers=admin, json={"name": "cli"}).json()["key"]
    for var in ("SDFLEET_URL", "SDFLEET_TOKEN", "SDFLEET_SERVER", "SDFLEET_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    env = {names[0]: fleet.url, names[1]: key, "COLUMNS": "200"}
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "--type", "Lora"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "demo-lora.safetensors" in listed.output
    notifications = runner.invoke(app, ["notifications", "list"], env=env)
    assert notifications.exit_code == 0, notifications.output
    missing = runner.invoke(app, ["generate", "a boat"], env={names[0]: fleet.url})
    assert missing.exit_code == 2 and "SDFLEET_TOKEN" in missing.output
