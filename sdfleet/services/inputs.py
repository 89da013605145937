"""Input images: decoded and checked once, stored in the object store by content hash."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from PIL import Image

from sdfleet.domain.errors import InvalidInput
from sdfleet.engine.a1111_fields import binary_mask, mask_is_blank
from sdfleet.engine.image_admission import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageHeader,
    ImageRejected,
    ImageTooLarge,
    admit_image,
    open_admitted,
    png_size,
)

MAX_INPUT_BYTES = 32 * 1024 * 1024
#: what a stored input may be called (they are `{sha256}.png`); anything else is simply not found
INPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,190}(\.[A-Za-z0-9]{1,8})?")

T = TypeVar("T")


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


def rejected(exc: ImageRejected, *, field: str) -> InvalidInput:
    """The 422 for an image that was not admitted, naming the field (and the limit when it was too large)."""
    details = {}
    if isinstance(exc, ImageTooLarge):
        details = {"max_pixels": exc.max_pixels, "width": exc.width, "height": exc.height}
    return InvalidInput(f"{field}: {exc}", field=field, details=details)


def check_image(data: bytes, *, field: str, max_pixels: int) -> ImageHeader:
    """The header of an image within the byte and pixel limits; nothing is decoded."""
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInput(f"{field} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB", field=field)
    try:
        return admit_image(data, max_pixels=max_pixels)
    except ImageRejected as exc:
        raise rejected(exc, field=field) from None


def normalise_image(data: bytes, *, field: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[bytes, int, int]:
    """Check the header against the limits, then decode and return the image as PNG with its size."""

    def to_png(img: Image.Image) -> tuple[bytes, int, int]:
        mode = img.mode if img.mode in ("RGB", "RGBA", "L", "LA") else "RGBA"
        return png_bytes(img.convert(mode)), img.width, img.height

    return _decoded(data, field=field, max_pixels=max_pixels, convert=to_png)


def a1111_mask(data: bytes, *, field: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> bytes:
    """An A1111 request's mask as the 8-bit grey PNG A1111 reads from it (`a1111_fields.binary_mask`), so the
    graph's LoadImageMask sees A1111's mask whatever the client's colours or transparency."""
    return _decoded(data, field=field, max_pixels=max_pixels, convert=lambda img: png_bytes(binary_mask(img)))


def png_bytes(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _decoded(data: bytes, *, field: str, max_pixels: int, convert: Callable[[Image.Image], T]) -> T:
    """`convert` of the decoded image, once its bytes and header are within the limits; 422s naming `field`."""
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInput(f"{field} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB", field=field)
    try:
        with open_admitted(data, max_pixels=max_pixels) as img:
            img.load()
            return convert(img)
    except ImageRejected as exc:
        raise rejected(exc, field=field) from None
    except (OSError, SyntaxError, ValueError) as exc:  # the header was fine, the pixel data is not
        raise InvalidInput(f"{field} is a damaged image", field=field) from exc


def blank_mask(png: bytes, *, inverted: bool) -> bool:
    """Whether a mask made by `a1111_mask` masks nothing."""
    with Image.open(io.BytesIO(png)) as img:
        return mask_is_blank(img, inverted=inverted)


class InputImages:
    """Stores a user's input images under `inputs/{user_id}/{sha256}.png`."""

    def __init__(self, objects, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        self._objects = objects
        self.max_pixels = max_pixels

    def store(self, *, user_id: str, data: bytes, field: str) -> StoredInput:
        png, width, height = normalise_image(data, field=field, max_pixels=self.max_pixels)
        digest = hashlib.sha256(png).hexdigest()
        name = f"{digest}.png"
        key = f"inputs/{user_id}/{name}"
        if not self._objects.exists(key):
            self._objects.put(key, png, content_type="image/png")
        return StoredInput(name=name, key=key, width=width, height=height)

    def size(self, key: str) -> tuple[int, int]:
        """(width, height) of a stored input from its PNG header; the largest admitted square if unreadable."""
        try:
            head = b"".join(self._objects.open_range(key, start=0, end=23))
        except (KeyError, OSError):
            head = b""
        side = int(self.max_pixels ** 0.5)
        return png_size(head) or (side, side)

    def key_for(self, *, user_id: str, name: str) -> str | None:
        """The key of a user's input image, if it exists (other users' inputs are not found)."""
        if not isinstance(name, str) or not INPUT_NAME.fullmatch(name):
            return None
        key = f"inputs/{user_id}/{name}"
        return key if self._objects.exists(key) else None
