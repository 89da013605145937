"""Input images: decoded and checked once, stored in the object store by content hash."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from sdfleet.domain.errors import InvalidInput

MAX_INPUT_BYTES = 32 * 1024 * 1024
MAX_INPUT_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class StoredInput:
    """An input image in the object store; `name` is what graphs reference."""

    name: str
    key: str
    width: int
    height: int


def decode_base64_image(value: str, *, field: str) -> bytes:
    """Decode an A1111-style base64 image (with or without a data: URL prefix)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} must be a base64-encoded image", field=field)
    if value.startswith("data:"):
        value = value.partition(",")[2]
    if len(value) > MAX_INPUT_BYTES * 4 // 3 + 4:
        raise InvalidInput(f"{field} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB", field=field)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field} is not valid base64", field=field) from exc


def normalise_image(data: bytes, *, field: str) -> tuple[bytes, int, int]:
    """Check the bytes are an image of sane size and return them as PNG with its size."""
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInput(f"{field} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB", field=field)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_INPUT_PIXELS:
                raise InvalidInput(f"{field} is {img.width}x{img.height}; at most {MAX_INPUT_PIXELS} pixels",
                                   field=field)
            img.load()
            out = io.BytesIO()
            mode = img.mode if img.mode in ("RGB", "RGBA", "L", "LA") else "RGBA"
            img.convert(mode).save(out, format="PNG")
            return out.getvalue(), img.width, img.height
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{field} is not a readable image (PNG, JPEG, WebP …)", field=field) from exc


class InputImages:
    """Stores a user's input images under `inputs/{user_id}/{sha256}.png`."""

    def __init__(self, objects) -> None:
        self._objects = objects

    def store(self, *, user_id: str, data: bytes, field: str) -> StoredInput:
        png, width, height = normalise_image(data, field=field)
        digest = hashlib.sha256(png).hexdigest()
        name = f"{digest}.png"
        key = f"inputs/{user_id}/{name}"
        if not self._objects.exists(key):
            self._objects.put(key, png, content_type="image/png")
        return StoredInput(name=name, key=key, width=width, height=height)

    def key_for(self, *, user_id: str, name: str) -> str | None:
        """The key of a user's input image, if it exists (other users' inputs are not found)."""
        if "/" in name or "\\" in name or not name or len(name) > 200:
            return None
        key = f"inputs/{user_id}/{name}"
        return key if self._objects.exists(key) else None
