"""Inspect a model file: hash it, validate it, and tell what it is (type, architecture, precision)."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sdfleet.modelfiles.architecture import Detection, as_declared, detect_architecture
from sdfleet.modelfiles.errors import ModelFileError
from sdfleet.modelfiles.safetensors_header import SafetensorsHeader, read_safetensors_header
from sdfleet.modelfiles.types import ModelType, parse_model_type

HASH_CHUNK_BYTES = 1 << 20
#: share of floating-point elements one dtype must hold for the file to be called that precision
DOMINANT_SHARE = 0.9

PRECISIONS = {
    "F16": "fp16",
    "BF16": "bf16",
    "F32": "fp32",
    "F64": "fp64",
    "F8_E4M3": "fp8_e4m3",
    "F8_E5M2": "fp8_e5m2",
    "F8_E8M0": "fp8_e8m0",
    "F4": "fp4",
    "F6_E2M3": "fp6_e2m3",
    "F6_E3M2": "fp6_e3m2",
}

_PICKLE_HINT = "pickle checkpoints (.ckpt, .pt, .bin, .pth) must be converted to safetensors first"


@dataclass(frozen=True)
class ModelInspection:
    """What an accepted model file is, as stored in the registry and shown to users."""

    sha256: str
    #: A1111's short hash: the first 10 hex digits of the sha256
    short_hash: str
    size: int
    format: str
    model_type: ModelType
    architecture: str
    layout: str
    precision: str
    tensor_count: int
    metadata: dict[str, str] = field(default_factory=dict)


def inspect_model_file(path: Path | str, *, declared_type: str | ModelType) -> ModelInspection:
    """Validate `path` as a safetensors model of `declared_type` and describe it; raise ModelFileError if not."""
    # 1. Check inputs
    model_type = parse_model_type(str(declared_type))
    with Path(path).open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        # 2. Sniff the format before trusting any length in the file
        _check_format(stream.read(16), size=size)
        stream.seek(0)
        # 3. Validate the header and tell what the tensors are
        header = read_safetensors_header(stream, file_size=size)
        detection = _detect(header, declared=model_type)
        # 4. Hash the bytes that were validated
        stream.seek(0)
        digest = _sha256(stream)
    return ModelInspection(
        sha256=digest,
        short_hash=digest[:10],
        size=size,
        format="safetensors",
        model_type=detection.model_type,
        architecture=detection.architecture,
        layout=detection.layout,
        precision=describe_precision(header),
        tensor_count=len(header.tensors),
        metadata=header.metadata,
    )


def _check_format(head: bytes, *, size: int) -> None:
    if size == 0:
        raise ModelFileError("not_a_model", "file is empty")
    if head.startswith(b"PK\x03\x04"):
        raise ModelFileError("unsupported_format", f"file is a zip archive (a torch.save file?): {_PICKLE_HINT}")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise ModelFileError("unsupported_format", f"file is a Python pickle: {_PICKLE_HINT}")
    if head.startswith(b"GGUF"):
        raise ModelFileError("unsupported_format", "GGUF files are not supported; upload safetensors")
    if len(head) < 9 or head[8:9] != b"{":
        raise ModelFileError(
            "not_a_model", "file is not a safetensors model (expected an 8-byte length and a JSON header)"
        )


def _detect(header: SafetensorsHeader, *, declared: ModelType) -> Detection:
    if not header.tensors:
        raise ModelFileError("not_a_model", "file holds no tensors")
    detection = detect_architecture(header.shapes())
    if detection is None:
        sample = ", ".join(sorted(header.tensors)[:3])
        raise ModelFileError(
            "not_a_model",
            f"tensor names match no known model type ({', '.join(t.value for t in ModelType)}); first names: {sample}",
        )
    detection = as_declared(detection, header.shapes(), declared.value)
    if detection.model_type is not declared:
        raise ModelFileError(
            "wrong_type",
            f"declared type is {declared.value!r} but the tensors are a {detection.model_type.value!r} model "
            f"({detection.architecture})",
        )
    return detection


def _sha256(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(HASH_CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def describe_precision(header: SafetensorsHeader) -> str:
    """Name the floating-point precision of the tensors: fp16, bf16, fp32 …, or "mixed" when none dominates."""
    elements: Counter[str] = Counter()
    for info in header.tensors.values():
        if info.dtype in PRECISIONS:
            count = 1
            for dim in info.shape:
                count *= dim
            elements[PRECISIONS[info.dtype]] += count
    total = sum(elements.values())
    if total == 0:
        return "none"
    name, count = elements.most_common(1)[0]
    return name if count >= DOMINANT_SHARE * total else "mixed"
