"""Training checkpoints: adapter weights, optimizer, LR scheduler, RNG states and the data position in one file,
read back with `weights_only` (tensors and plain values only: a checkpoint cannot run code when loaded)."""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

FORMAT = "sdfleet-lora-training/1"


@dataclass
class TrainingState:
    """A resumable point of a run."""

    step: int
    micro_step: int  #: the data loader's position: the next micro-batch to draw
    adapters: dict[str, dict[str, torch.Tensor]]
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, Any]
    losses: list[tuple[int, float]]
    fingerprint: str


def capture_rng() -> dict[str, Any]:
    """torch's (CPU and CUDA) and Python's global generator states."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _python_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state() -> list:
    version, values, gauss = random.getstate()
    return [version, list(values), gauss]


def dump_state(state: TrainingState) -> bytes:
    """The checkpoint's bytes."""
    out = io.BytesIO()
    torch.save({"format": FORMAT, **asdict(state)}, out)
    return out.getvalue()


def write_state(state: TrainingState, path: Path) -> Path:
    """Write a checkpoint atomically (a reader never sees half a file)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(dump_state(state))
    partial.replace(path)
    return path


def read_state(source: Path | bytes) -> TrainingState:
    """Load a checkpoint written by `dump_state` (nothing but tensors and plain values is accepted)."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb")
    with stream:
        data = torch.load(stream, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
        raise ValueError("not an sdfleet LoRA training checkpoint")
    data["losses"] = [tuple(x) for x in data["losses"]]
    return TrainingState(**data)
