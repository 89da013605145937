"""Strict safetensors header validation: every lie in a header is refused as corrupt_header."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from sdfleet.modelfiles.errors import ModelFileError
from sdfleet.modelfiles.safetensors_header import MAX_HEADER_BYTES, read_safetensors_header


def _raw(header: dict[str, object], data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def _corrupt(raw: bytes, tmp_path: Path) -> ModelFileError:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    with pytest.raises(ModelFileError) as caught:
        read_safetensors_header(path)
    assert caught.value.code == "corrupt_header"
    return caught.value


def test_valid_file_gives_tensors_metadata_and_offsets(tmp_path: Path, build_safetensors: Callable[..., bytes]) -> None:
    raw = build_safetensors({"a": (2, 3), "b": (4,)}, dtypes={"b": "F32"}, metadata={"ss_network_dim": "4"})
    path = tmp_path / "ok.safetensors"
    path.write_bytes(raw)

    header = read_safetensors_header(path)

    assert header.shapes() == {"a": (2, 3), "b": (4,)}
    assert header.tensors["a"].dtype == "F16" and header.tensors["a"].nbytes == 12
    assert header.tensors["b"].begin == 12 and header.tensors["b"].end == 28
    assert header.metadata == {"ss_network_dim": "4"}
    assert header.data_start + 28 == len(raw) == header.file_size


def test_stream_source_reads_the_same_header(build_safetensors: Callable[..., bytes]) -> None:
    raw = build_safetensors({"x": (8,)})
    header = read_safetensors_header(io.BytesIO(raw))
    assert header.shapes() == {"x": (8,)}


def test_real_safetensors_writer_output_is_accepted(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    from safetensors.numpy import save_file

    path = tmp_path / "real.safetensors"
    save_file({"w": np.ones((3, 5), dtype=np.float16), "i": np.arange(7)}, str(path), metadata={"k": "v"})
    header = read_safetensors_header(path)
    assert header.shapes() == {"w": (3, 5), "i": (7,)}
    assert header.tensors["i"].dtype == "I64"


def test_size_mismatch_between_shape_and_offsets(tmp_path: Path) -> None:
    error = _corrupt(_raw({"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 6]}}, b"\0" * 6), tmp_path)
    assert "'a'" in error.message and "needs 8 bytes" in error.message


def test_overlapping_offsets(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
        "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]},
    }
    assert "overlap" in _corrupt(_raw(header, b"\0" * 12), tmp_path).message


def test_gap_between_tensors(tmp_path: Path) -> None:
    header = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}
    assert "gap" in _corrupt(_raw(header, b"\0" * 8), tmp_path).message


def test_terabyte_shape_is_refused_without_allocating(tmp_path: Path) -> None:
    terabytes = 1 << 40
    header = {"a": {"dtype": "F32", "shape": [terabytes, 1024], "data_offsets": [0, terabytes * 4096]}}
    error = _corrupt(_raw(header, b"\0" * 16), tmp_path)
    assert "file holds 16" in error.message


def test_truncated_data_section(tmp_path: Path, build_safetensors: Callable[..., bytes]) -> None:
    raw = build_safetensors({"a": (64,)})
    assert "file holds" in _corrupt(raw[:-10], tmp_path).message


def test_trailing_bytes_after_data(tmp_path: Path, build_safetensors: Callable[..., bytes]) -> None:
    raw = build_safetensors({"a": (4,)})
    assert "file holds" in _corrupt(raw + b"junk", tmp_path).message


def test_file_truncated_inside_header(tmp_path: Path, build_safetensors: Callable[..., bytes]) -> None:
    raw = build_safetensors({"a": (4,)})
    assert "header length" in _corrupt(raw[:20], tmp_path).message


def test_non_json_header(tmp_path: Path) -> None:
    body = b"{not json at all"
    assert "not valid JSON" in _corrupt(struct.pack("<Q", len(body)) + body, tmp_path).message


def test_huge_header_length(tmp_path: Path) -> None:
    raw = struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}"
    assert "more than" in _corrupt(raw, tmp_path).message


def test_unknown_dtype_and_bad_shape(tmp_path: Path) -> None:
    bad_dtype = {"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}
    assert "dtype" in _corrupt(_raw(bad_dtype, b"\0" * 16), tmp_path).message
    negative = {"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}
    assert "shape" in _corrupt(_raw(negative, b""), tmp_path).message


def test_duplicate_tensor_names(tmp_path: Path) -> None:
    entry = '{"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}'
    body = f'{{"a": {entry}, "a": {entry}}}'.encode()
    assert "twice" in _corrupt(struct.pack("<Q", len(body)) + body + b"\0", tmp_path).message


def test_metadata_values_must_be_strings(tmp_path: Path) -> None:
    header = {"__metadata__": {"steps": 10}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    assert "__metadata__['steps']" in _corrupt(_raw(header, b"\0"), tmp_path).message


def test_tiny_file(tmp_path: Path) -> None:
    assert "too short" in _corrupt(b"abc", tmp_path).message


def test_unseekable_stream_needs_and_uses_file_size(build_safetensors: Callable[..., bytes]) -> None:
    raw = build_safetensors({"x": (8,)})

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(raw)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            data = self.inner.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

    with pytest.raises(ValueError, match="file_size"):
        read_safetensors_header(Pipe())  # type: ignore[arg-type]
    assert read_safetensors_header(Pipe(), file_size=len(raw)).shapes() == {"x": (8,)}  # type: ignore[arg-type]
    with pytest.raises(ModelFileError, match="file holds"):
        read_safetensors_header(Pipe(), file_size=len(raw) + 4)  # type: ignore[arg-type]
