"""Image admission: an image's size is read from its header and refused above a pixel limit before any pixel
is decoded; PNG text chunks are read without decoding pixels at all.

Torch-free (Pillow, zlib): the API server (uploads, init images, masks, png-info) and the worker's engine
(LoadImage, LoadImageMask) admit images through this one module. The size checked is the one Pillow itself
parsed from the header, so it is the size Pillow would decode."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
#: Formats accepted as input images; Pillow's rarer decoders (TIFF, PSD, ICO …) are never reached.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
MAX_TEXT_CHUNK_BYTES = 4 * 1024 * 1024  # one decompressed zTXt/iTXt chunk (ComfyUI embeds whole workflows)
MAX_TEXT_BYTES = 16 * 1024 * 1024  # all text chunks of one PNG together
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LIMIT_SETTING = "SDFLEET_MAX_IMAGE_PIXELS"


class ImageRejected(ValueError):
    """An image that is not admitted; the message says why."""


class UnreadableImage(ImageRejected):
    """Not an image of an accepted format, or a damaged one."""


class ImageTooLarge(ImageRejected):
    """The header declares more pixels than the limit; nothing was decoded."""

    def __init__(self, *, width: int | None, height: int | None, max_pixels: int) -> None:
        size = f"{width}x{height} = {width * height} pixels" if width and height else "over the limit"
        super().__init__(f"image is {size}; the limit is {max_pixels} pixels ({LIMIT_SETTING})")
        self.width, self.height, self.max_pixels = width, height, max_pixels


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


ImageSource = bytes | Path | BinaryIO


@contextmanager
def open_admitted(source: ImageSource, *, max_pixels: int) -> Iterator[Image.Image]:
    """Open an image lazily, check its header against `max_pixels`, and yield it still undecoded.

    Raises ImageTooLarge or UnreadableImage; decoding (`load`, `convert` …) is the caller's, inside the block."""
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image = Image.open(fp, formats=FORMATS)
    except Image.DecompressionBombError:  # Pillow's own, far higher limit: still ours to report
        raise ImageTooLarge(width=None, height=None, max_pixels=max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise UnreadableImage(f"not a readable image ({', '.join(FORMATS)})") from exc
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(width=width, height=height, max_pixels=max_pixels)
        if width <= 0 or height <= 0:
            raise UnreadableImage(f"image has no pixels ({width}x{height})")
        yield image


def admit_image(source: ImageSource, *, max_pixels: int) -> ImageHeader:
    """The header of an image within `max_pixels`; raises ImageTooLarge / UnreadableImage. Decodes nothing."""
    with open_admitted(source, max_pixels=max_pixels) as image:
        return ImageHeader(format=str(image.format), width=image.width, height=image.height)


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first 24 bytes of a PNG (its IHDR), or None for anything else."""
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def read_png_text(png: bytes) -> dict[str, str]:
    """The tEXt, zTXt and iTXt chunks of a PNG, read chunk by chunk: pixels are never decompressed.

    Not a PNG → {}. A truncated file or a damaged text chunk (CRC) raises UnreadableImage; text past the size
    caps raises ImageRejected."""
    if not png.startswith(PNG_SIGNATURE):
        return {}
    texts: dict[str, str] = {}
    total = 0
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(png):
            raise UnreadableImage("PNG ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        end = pos + 12 + length
        if end > len(png):
            raise UnreadableImage("PNG chunk runs past the end of the file")
        data = png[pos + 8:end - 4]
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            if zlib.crc32(kind + data) != struct.unpack(">I", png[end - 4:end])[0]:
                raise UnreadableImage(f"PNG {kind.decode()} chunk is damaged (CRC)")
            key, value = _text_chunk(kind, data)
            total += len(value)
            if total > MAX_TEXT_BYTES:
                raise ImageRejected(f"PNG text chunks exceed {MAX_TEXT_BYTES} bytes")
            if key and key not in texts:
                texts[key] = value
        elif kind == b"IEND":
            break
        pos = end
    return texts


def _text_chunk(kind: bytes, data: bytes) -> tuple[str, str]:
    key, _, rest = data.partition(b"\0")
    name = key.decode("latin-1")
    if kind == b"tEXt":
        return name, rest.decode("latin-1")
    if kind == b"zTXt":
        return name, _inflate(rest[1:]).decode("latin-1")
    compressed, rest = rest[:1] == b"\x01", rest[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    raw = _inflate(text) if compressed else text
    return name, raw.decode("utf-8", errors="replace")


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TEXT_CHUNK_BYTES + 1)
    except zlib.error as exc:
        raise UnreadableImage("PNG text chunk is not valid zlib data") from exc
    if len(out) > MAX_TEXT_CHUNK_BYTES:
        raise ImageRejected(f"a PNG text chunk inflates past {MAX_TEXT_CHUNK_BYTES} bytes")
    return out
