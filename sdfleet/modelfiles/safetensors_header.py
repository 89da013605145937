"""Read and strictly validate a safetensors header without trusting a single number in it."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sdfleet.modelfiles.errors import ModelFileError

#: the largest header accepted (the safetensors reference implementation uses the same cap)
MAX_HEADER_BYTES = 100 * 1024 * 1024

#: bits per element of every dtype the safetensors format defines
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor entry of a header: dtype, shape and byte range relative to the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies in the data section."""
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated header: every tensor fits exactly, and the data section ends at the end of the file."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    header_size: int = 0
    file_size: int = 0

    @property
    def data_start(self) -> int:
        """Offset in the file where the data section begins."""
        return 8 + self.header_size

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name → shape."""
        return {name: info.shape for name, info in self.tensors.items()}


def read_safetensors_header(source: Path | str | BinaryIO, *, file_size: int | None = None) -> SafetensorsHeader:
    """Read and validate the header of a safetensors file (a path, or a binary stream positioned at 0).

    `file_size` is needed only for a stream that cannot seek; every failure raises `corrupt_header`.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        with path.open("rb") as stream:
            return _read(stream, file_size=os.fstat(stream.fileno()).st_size)
    if file_size is None:
        if not source.seekable():
            raise ValueError("file_size is required for a stream that cannot seek")
        start = source.tell()
        file_size = source.seek(0, os.SEEK_END) - start
        source.seek(start)
    return _read(source, file_size=file_size)


def _corrupt(message: str) -> ModelFileError:
    return ModelFileError("corrupt_header", message)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read(stream: BinaryIO, *, file_size: int) -> SafetensorsHeader:
    if file_size < 8:
        raise _corrupt(f"file is {file_size} bytes, too short for a safetensors header (at least 8 expected)")
    prefix = _read_exact(stream, 8)
    if len(prefix) != 8:
        raise _corrupt("file ended inside the 8-byte header length")
    (header_size,) = struct.unpack("<Q", prefix)
    if header_size > MAX_HEADER_BYTES:
        raise _corrupt(f"header length is {header_size} bytes, more than the {MAX_HEADER_BYTES} accepted")
    if header_size > file_size - 8:
        raise _corrupt(f"header length is {header_size} bytes but the file has only {file_size - 8} after it")
    raw = _read_exact(stream, header_size)
    if len(raw) != header_size:
        raise _corrupt(f"file ended inside the header ({len(raw)} of {header_size} bytes)")
    parsed = _parse_json(raw)
    metadata = _parse_metadata(parsed.pop("__metadata__", None))
    data_size = file_size - 8 - header_size
    tensors = {name: _parse_tensor(name, entry) for name, entry in parsed.items()}
    _check_layout(tensors, data_size=data_size)
    return SafetensorsHeader(tensors=tensors, metadata=metadata, header_size=header_size, file_size=file_size)


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _corrupt(f"header names tensor {key!r} twice")
        result[key] = value
    return result


def _parse_json(raw: bytes) -> dict[str, object]:
    if not raw.lstrip(b" ").startswith(b"{"):
        raise _corrupt("header is not a JSON object (it must start with '{')")
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except UnicodeDecodeError as exc:
        raise _corrupt(f"header is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _corrupt(f"header is not valid JSON ({exc.msg} at byte {exc.pos})") from None
    if not isinstance(parsed, dict):
        raise _corrupt(f"header must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _parse_metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _corrupt(f"__metadata__ must be an object of strings, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise _corrupt(f"__metadata__[{key!r}] must be a string, got {type(item).__name__}")
    return dict(value)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_tensor(name: str, entry: object) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _corrupt(f"tensor {name!r}: entry must be an object, got {type(entry).__name__}")
    dtype = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise _corrupt(f"tensor {name!r}: dtype must be one of {sorted(DTYPE_BITS)}, got {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _corrupt(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        raise _corrupt(f"tensor {name!r}: data_offsets must be [begin, end] integers, got {offsets!r}")
    begin, end = offsets
    if end < begin:
        raise _corrupt(f"tensor {name!r}: data_offsets end {end} is before begin {begin}")
    elements = 1
    for dim in shape:
        elements *= dim
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8:
        raise _corrupt(f"tensor {name!r}: {elements} elements of {dtype} do not fill whole bytes")
    if bits // 8 != end - begin:
        raise _corrupt(
            f"tensor {name!r}: shape {shape} of {dtype} needs {bits // 8} bytes but data_offsets span {end - begin}"
        )
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def _check_layout(tensors: dict[str, TensorInfo], *, data_size: int) -> None:
    position = 0
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.begin < position:
            raise _corrupt(f"tensor {info.name!r}: data_offsets [{info.begin}, {info.end}] overlap the previous tensor")
        if info.begin > position:
            raise _corrupt(f"tensor {info.name!r}: data_offsets leave a gap at bytes {position}..{info.begin}")
        position = info.end
    if position != data_size:
        raise _corrupt(f"tensors cover {position} bytes of data but the file holds {data_size} after the header")
