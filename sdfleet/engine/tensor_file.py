"""Write safetensors files byte-for-byte reproducibly (sorted header and metadata, streamed tensor data)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, *, metadata: dict[str, str]) -> Path:
    """Write `tensors` in the safetensors format with a sorted header, so equal inputs give equal bytes.

    safetensors' own writer orders `__metadata__` by a hash map, which changes from run to run.
    """
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    ordered = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        if tensor.dtype not in _DTYPES:
            raise ValueError(
                f"tensor {name!r} has dtype {tensor.dtype}; expected one of {sorted(_DTYPES.values())}"
            )
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        ordered.append(tensor)
        offset += size
    encoded = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with staging.open("wb") as stream:
        stream.write(len(encoded).to_bytes(8, "little"))
        stream.write(encoded)
        for tensor in ordered:
            if tensor.numel():
                stream.write(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    staging.replace(path)
    return path
