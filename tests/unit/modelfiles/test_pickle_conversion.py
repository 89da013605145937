"""Pickle checkpoints are converted in an isolated subprocess; a malicious pickle never runs."""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

from sdfleet.modelfiles.convert import convert_pickle_to_safetensors  # noqa: E402
from sdfleet.modelfiles.errors import ModelFileError  # noqa: E402
from sdfleet.modelfiles.inspect import inspect_model_file  # noqa: E402

pytestmark = pytest.mark.slow  # every conversion starts a fresh interpreter that imports torch


class _SentinelWriter:
    """Unpickling this runs a shell command that creates the sentinel file."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.sentinel}",))


class _SentinelExec:
    """Unpickling this runs Python code through builtins.exec."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.sentinel)!r}, 'w').write('pwned')",))


def _refused(src: Path, dst: Path, **kwargs: object) -> ModelFileError:
    with pytest.raises(ModelFileError) as caught:
        convert_pickle_to_safetensors(src, dst, **kwargs)  # type: ignore[arg-type]
    assert not dst.exists()
    return caught.value


def test_the_payload_is_real(tmp_path: Path) -> None:
    sentinel = tmp_path / "proof"
    pickle.loads(pickle.dumps(_SentinelWriter(sentinel)))
    assert sentinel.exists()


@pytest.mark.parametrize(
    ("payload", "container"),
    [(_SentinelWriter, "torch_zip"), (_SentinelExec, "torch_zip"), (_SentinelWriter, "raw_pickle")],
)
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, payload: type, container: str) -> None:
    sentinel = tmp_path / "sentinel"
    src = tmp_path / "evil.ckpt"
    evil = payload(sentinel)
    if container == "torch_zip":
        torch.save({"state_dict": {"w": torch.zeros(2)}, "callbacks": evil}, src)
    else:
        src.write_bytes(pickle.dumps(evil, protocol=2))

    error = _refused(src, tmp_path / "out.safetensors")

    assert error.code == "unsafe_pickle"
    assert "system" in error.message or "exec" in error.message
    assert not sentinel.exists()


def test_ldm_ckpt_converts_to_equivalent_safetensors(tmp_path: Path) -> None:
    state = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.randn(8, 4, 3, 3),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.randn(8, 768),
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.randn(768).half(),
    }
    src = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "global_step": 470000, "epoch": 6}, src)
    dst = tmp_path / "model.safetensors"

    convert_pickle_to_safetensors(src, dst)

    converted = load_file(str(dst))
    assert converted.keys() == state.keys()
    for key, tensor in state.items():
        assert converted[key].dtype == tensor.dtype and torch.equal(converted[key], tensor)
    assert inspect_model_file(dst, declared_type="Stable-diffusion").architecture == "sd1"


def test_lightning_callback_and_numpy_scalars_are_tolerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.monitor = "val/loss"

    ModelCheckpoint.__module__ = module.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint  # type: ignore[attr-defined]
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", module.__name__):
        monkeypatch.setitem(sys.modules, name, module if name == module.__name__ else types.ModuleType(name))
    src = tmp_path / "lightning.ckpt"
    weight = torch.randn(3, 3)
    torch.save({"state_dict": {"w": weight}, "callbacks": {"cb": ModelCheckpoint()}, "best": np.float64(0.5)}, src)
    dst = tmp_path / "lightning.safetensors"

    convert_pickle_to_safetensors(src, dst)

    assert torch.equal(load_file(str(dst))["w"], weight)


def test_tied_tensors_and_textual_inversion(tmp_path: Path) -> None:
    shared = torch.randn(4, 4)
    tied = tmp_path / "tied.pt"
    torch.save({"a": shared, "b": shared, "view": shared[1]}, tied)
    convert_pickle_to_safetensors(tied, tmp_path / "tied.safetensors")
    loaded = load_file(str(tmp_path / "tied.safetensors"))
    assert torch.equal(loaded["b"], shared) and torch.equal(loaded["view"], shared[1])

    vectors = torch.randn(2, 768)
    embedding = tmp_path / "style.pt"
    torch.save(
        {"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": "style", "step": 9}, embedding
    )
    convert_pickle_to_safetensors(embedding, tmp_path / "style.safetensors")
    assert torch.equal(load_file(str(tmp_path / "style.safetensors"))["emb_params"], vectors)
    assert inspect_model_file(tmp_path / "style.safetensors", declared_type="embeddings").architecture == "sd1"


def test_not_a_checkpoint_and_no_tensors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"PK\x03\x04 this is not really a zip file" * 10)
    assert _refused(garbage, tmp_path / "g.safetensors").code == "conversion_failed"
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3, "name": "nothing"}, empty)
    error = _refused(empty, tmp_path / "e.safetensors")
    assert error.code == "conversion_failed" and "no tensor" in error.message


def test_limits_stop_the_converter(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(4)}, src)
    starved = _refused(src, tmp_path / "m.safetensors", memory_limit_bytes=64 * 1024**2)
    assert starved.code == "conversion_failed"
    slow = _refused(src, tmp_path / "m.safetensors", timeout_s=0.05)
    assert slow.code == "conversion_failed" and "longer than" in slow.message
