"""Demo model files: reproducible bytes, A1111 layouts, and loadable by the engine's own loader."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from sdfleet.engine import checkpoints, demo
from sdfleet.modelfiles.inspect import inspect_model_file


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> list[demo.DemoFile]:
    return demo.create_demo_files(tmp_path_factory.mktemp("demo"))


def _digests(files: list[demo.DemoFile]) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.path.read_bytes()).hexdigest() for f in files}


def test_demo_files_are_listed_with_type_and_architecture(demo_files: list[demo.DemoFile]) -> None:
    listed = {(f.path.name, f.model_type, f.name, f.architecture) for f in demo_files}
    assert listed == {
        ("demo-sd15.safetensors", "Stable-diffusion", "demo-sd15", "sd1"),
        ("demo-sdxl.safetensors", "Stable-diffusion", "demo-sdxl", "sdxl"),
        ("demo-lora.safetensors", "Lora", "demo-lora", "sd1"),
    }
    for f in demo_files:
        assert f.path.stat().st_size < 10 * 2**20


def test_demo_files_are_byte_for_byte_reproducible(demo_files: list[demo.DemoFile], tmp_path: Path) -> None:
    assert _digests(demo.create_demo_files(tmp_path)) == _digests(demo_files)


def test_checkpoints_load_offline_as_their_family(
    demo_files: list[demo.DemoFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for f in demo_files:
        if f.model_type == "Stable-diffusion":
            assert checkpoints.load_checkpoint(f.path).family == f.architecture


def test_model_file_inspection_agrees(demo_files: list[demo.DemoFile]) -> None:
    for f in demo_files:
        info = inspect_model_file(f.path, declared_type=f.model_type)
        assert (str(info.model_type), info.architecture) == (f.model_type, f.architecture), f.name


def test_lora_targets_the_demo_checkpoint(demo_files: list[demo.DemoFile]) -> None:
    by_name = {f.name: f.path for f in demo_files}
    with safe_open(str(by_name["demo-lora"]), framework="pt") as handle:
        down = handle.get_tensor("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight")
    with safe_open(str(by_name["demo-sd15"]), framework="pt") as handle:
        q_proj = handle.get_tensor(
            "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"
        )
    assert down.shape[1] == q_proj.shape[1]
    assert torch.count_nonzero(down) == down.numel()


def test_module_entry_point_writes_the_files(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "sdfleet.engine.demo", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [line[0] for line in lines] == ["demo-sd15", "demo-sdxl", "demo-lora"]
    for name, _type, _arch, size, sha, path in lines:
        assert Path(path).stat().st_size == int(size)
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha, name
