"""kohya's dataset folder conventions, shared by zip uploads (server) and folder uploads (CLI).

`img.png` + `img.txt` (or `img.caption`): the sidecar is the caption. A folder named `N_name`
(`10_sks dog`) repeats its images N times per epoch; without a sidecar, `name` is the caption."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from sdfleet.domain.datasets import (
    CAPTION_EXTENSIONS,
    IMAGE_EXTENSIONS,
    DatasetRejection,
    folder_repeats,
    rejected,
)


@dataclass(frozen=True)
class PlannedImage:
    """One image of a folder or zip: its path, its caption sidecar (if any), repeats and folder caption."""

    path: str
    caption_path: str | None
    repeats: int
    folder_caption: str


def is_skipped(path: str) -> bool:
    """Hidden files, macOS resource forks and folders are not dataset content."""
    parts = path.replace("\\", "/").split("/")
    return path.endswith("/") or any(p.startswith(".") or p == "__MACOSX" for p in parts if p)


def plan_files(paths: list[str], *, default_repeats: int = 1) -> list[PlannedImage]:
    """Pair images with their caption sidecars and read repeats from `N_name` folders.

    Raises the named 422s: a caption without an image; no image at all; a file that is neither."""
    paths = sorted(p.replace("\\", "/") for p in paths if not is_skipped(p))
    images = [p for p in paths if p.lower().endswith(IMAGE_EXTENSIONS)]
    captions = {posixpath.splitext(p)[0]: p for p in paths if p.lower().endswith(CAPTION_EXTENSIONS)}
    others = [p for p in paths if p not in images and p not in captions.values()]
    if others:
        raise rejected(DatasetRejection.NOT_AN_IMAGE,
                       f"{others[0]!r} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a caption "
                       f"({', '.join(CAPTION_EXTENSIONS)})", path=others[0])
    stems = {posixpath.splitext(p)[0] for p in images}
    orphans = sorted(p for stem, p in captions.items() if stem not in stems)
    if orphans:
        raise rejected(DatasetRejection.CAPTION_WITHOUT_IMAGE,
                       f"caption {orphans[0]!r} has no image of the same name beside it", path=orphans[0],
                       paths=orphans[:20])
    if not images:
        raise rejected(DatasetRejection.EMPTY, "no images found (expected .png, .jpg, .jpeg or .webp files)")
    planned = []
    for path in images:
        folder = posixpath.dirname(path)
        repeats, folder_caption = folder_repeats(folder) or (default_repeats, "")
        planned.append(PlannedImage(path=path, caption_path=captions.get(posixpath.splitext(path)[0]),
                                    repeats=repeats, folder_caption=folder_caption))
    return planned
