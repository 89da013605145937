"""Dataset images at the door: each one checked (format, pixel limit, size for the resolution), zips unpacked
with bounded reads, captions and repeats read by kohya's conventions."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sdfleet.domain.dataset_files import plan_files
from sdfleet.domain.datasets import (
    IMAGE_FORMATS,
    MAX_CAPTION_LENGTH,
    MAX_IMAGES,
    DatasetRejection,
    check_caption,
    check_repeats,
    rejected,
    too_small,
)
from sdfleet.engine.image_admission import DEFAULT_MAX_IMAGE_PIXELS, ImageTooLarge, UnreadableImage, open_admitted

MiB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class IntakeLimits:
    """Bounds on what one upload may hold."""

    max_image_bytes: int = 32 * MiB
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  #: SDFLEET_MAX_IMAGE_PIXELS, the server's one image limit
    max_archive_bytes: int = 1024 * MiB  #: the uncompressed total of a zip
    max_archive_members: int = 2 * MAX_IMAGES + 100


@dataclass(frozen=True)
class Candidate:
    """An image about to be added: its bytes, as found in the upload, with caption and repeats."""

    filename: str
    data: bytes
    caption: str
    repeats: int


@dataclass(frozen=True)
class AdmittedImage:
    """A checked image: its bytes and what was read from its header."""

    candidate: Candidate
    sha256: str
    width: int
    height: int
    format: str


def admit_image(candidate: Candidate, *, resolution: int, limits: IntakeLimits) -> AdmittedImage:
    """Check one image: bytes, format, pixel count (from the header, before decoding), size for the resolution,
    then decode it fully so a truncated file is refused here rather than mid-training."""
    name = candidate.filename
    if len(candidate.data) > limits.max_image_bytes:
        raise rejected(DatasetRejection.TOO_LARGE,
                       f"{name!r} is larger than {limits.max_image_bytes // MiB} MiB", path=name)
    try:
        with open_admitted(candidate.data, max_pixels=limits.max_image_pixels) as img:
            width, height, fmt = img.width, img.height, img.format
            if fmt not in IMAGE_FORMATS:
                raise rejected(DatasetRejection.NOT_AN_IMAGE,
                               f"{name!r} is {fmt or 'an unknown format'}; expected PNG, JPEG or WebP", path=name)
            img.load()
    except ImageTooLarge as exc:
        raise rejected(DatasetRejection.DECOMPRESSION_BOMB, f"{name!r}: {exc}", path=name,
                       max_pixels=limits.max_image_pixels) from None
    except (UnreadableImage, OSError, SyntaxError, ValueError) as exc:  # header refused, or damaged pixel data
        raise rejected(DatasetRejection.NOT_AN_IMAGE, f"{name!r} is not a readable PNG, JPEG or WebP image",
                       path=name) from exc
    if too_small(width=width, height=height, resolution=resolution):
        raise rejected(DatasetRejection.TOO_SMALL,
                       f"{name!r} is {width}x{height}: too small for resolution {resolution} (at least a quarter "
                       f"of {resolution}x{resolution} pixels and 64 per side)", path=name, width=width,
                       height=height, resolution=resolution)
    return AdmittedImage(candidate=candidate, sha256=hashlib.sha256(candidate.data).hexdigest(), width=width,
                         height=height, format=fmt)


def read_zip(stream: BinaryIO, *, limits: IntakeLimits, default_repeats: int = 1) -> Iterator[Candidate]:
    """The images of a zip with their captions (sidecars or `N_name` folder names) and repeats, one at a time.

    Sizes are checked from the directory before anything is inflated, and every read is bounded."""
    try:
        archive = zipfile.ZipFile(stream)
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise rejected(DatasetRejection.NOT_A_ZIP, "the upload is not a readable zip archive") from exc
    with archive:
        if len(members) > limits.max_archive_members:
            raise rejected(DatasetRejection.TOO_MANY,
                           f"the zip holds {len(members)} files; at most {limits.max_archive_members}")
        if sum(m.file_size for m in members) > limits.max_archive_bytes:
            raise rejected(DatasetRejection.TOO_LARGE,
                           f"the zip inflates to more than {limits.max_archive_bytes // MiB} MiB")
        by_name = {m.filename: m for m in members}
        planned = plan_files(list(by_name), default_repeats=default_repeats)
        if len(planned) > MAX_IMAGES:
            raise rejected(DatasetRejection.TOO_MANY, f"the zip holds {len(planned)} images; at most {MAX_IMAGES}")

        def read(name: str, limit: int) -> bytes:
            member = by_name[name]
            if member.file_size > limit:
                raise rejected(DatasetRejection.TOO_LARGE, f"{name!r} is larger than {limit} bytes", path=name)
            try:
                with archive.open(member) as handle:
                    data = handle.read(limit + 1)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
                raise rejected(DatasetRejection.NOT_A_ZIP, f"{name!r} cannot be read from the zip: {exc}",
                               path=name) from exc
            if len(data) > limit:  # the directory lied about the size
                raise rejected(DatasetRejection.TOO_LARGE, f"{name!r} is larger than {limit} bytes", path=name)
            return data

        for item in planned:
            caption = item.folder_caption
            if item.caption_path is not None:
                raw = read(item.caption_path, MAX_CAPTION_LENGTH * 4)
                caption = check_caption(raw.decode("utf-8", errors="replace"), field=f"caption {item.caption_path!r}")
            yield Candidate(filename=item.path[-255:], data=read(item.path, limits.max_image_bytes), caption=caption,
                            repeats=check_repeats(item.repeats))
