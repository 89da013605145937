"""Tiny model files as raw safetensors bytes (no torch): a kohya LoRA of any size, and broken variants."""

from __future__ import annotations

import json
import os
import struct

LORA_KEY = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"


def safetensors_bytes(tensors: dict[str, tuple[str, tuple[int, ...]]], *, metadata: dict | None = None,
                      fill: bytes | None = None) -> bytes:
    """A valid safetensors file; tensors map name → (dtype, shape); data is `fill` or random bytes."""
    width = {"F16": 2, "F32": 4}
    header: dict = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + count * width[dtype]]}
        offset += count * width[dtype]
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    data = fill if fill is not None else os.urandom(offset)
    assert len(data) == offset
    return struct.pack("<Q", len(raw)) + raw + data


def lora_bytes(*, rank: int = 4, width: int = 768, metadata: dict | None = None) -> bytes:
    """A kohya SD1 LoRA; `width` scales the file (rank × width × 2 bytes for the down weight)."""
    return safetensors_bytes(
        {
            f"{LORA_KEY}.lora_down.weight": ("F16", (rank, width)),
            f"{LORA_KEY}.lora_up.weight": ("F16", (320, rank)),
            f"{LORA_KEY}.alpha": ("F16", ()),
        },
        metadata=metadata,
    )


def sized_lora_bytes(size_mib: float) -> bytes:
    """A LoRA of about `size_mib` MiB (the down weight carries the bulk)."""
    width = int(size_mib * 1024 * 1024 / (2 * 4))
    return lora_bytes(rank=4, width=width)


def lying_header_bytes() -> bytes:
    """A safetensors header whose tensor claims a terabyte the file does not have."""
    header = {f"{LORA_KEY}.lora_down.weight": {"dtype": "F16", "shape": [1 << 20, 1 << 19],
                                               "data_offsets": [0, 1 << 40]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * 64
