"""Builders of small safetensors files for the model-file tests (raw bytes: no torch needed)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

BYTES_PER = {"F16": 2, "BF16": 2, "F32": 4, "I64": 8, "U8": 1}

Shapes = Mapping[str, tuple[int, ...]]


def _build_safetensors(
    shapes: Shapes,
    *,
    dtype: str = "F16",
    dtypes: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """Return the bytes of a valid safetensors file of zero tensors with these shapes."""
    header: dict[str, object] = {}
    offset = 0
    for name, shape in shapes.items():
        kind = (dtypes or {}).get(name, dtype)
        count = 1
        for dim in shape:
            count *= dim
        size = count * BYTES_PER[kind]
        header[name] = {"dtype": kind, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\x00" * offset


@pytest.fixture
def write_model(tmp_path: Path) -> Callable[..., Path]:
    """Write a safetensors file of the given shapes under tmp_path and return its path."""
    counter = iter(range(1_000_000))

    def write(shapes: Shapes, **kwargs: object) -> Path:
        path = tmp_path / f"model{next(counter)}.safetensors"
        path.write_bytes(_build_safetensors(shapes, **kwargs))  # type: ignore[arg-type]
        return path

    return write


@pytest.fixture
def build_safetensors() -> Callable[..., bytes]:
    """The raw-bytes builder: build_safetensors(shapes, *, dtype=, dtypes=, metadata=) -> bytes."""
    return _build_safetensors
