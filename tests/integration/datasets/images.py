"""Small images, zips and crafted files for dataset tests."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image


def png(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int = 64, height: int = 64, color: tuple[int, int, int] = (30, 200, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG")
    return out.getvalue()


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A 64x64 PNG whose header claims `width` x `height`: a decoder trusting it would allocate gigabytes."""
    data = bytearray(png())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def zip_of(files: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content.encode() if isinstance(content, str) else content)
    return out.getvalue()


def colors(n: int) -> list[bytes]:
    """n different 64x64 PNGs."""
    return [png(color=(20 * i % 256, 255 - 15 * i % 256, 90)) for i in range(n)]


def noise_png(width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    """A PNG of random pixels (does not compress: about 3 bytes a pixel)."""
    import random

    rng = random.Random(seed)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(out, format="PNG")
    return out.getvalue()
