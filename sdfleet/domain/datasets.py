"""Training datasets: named sets of captioned images, shared by role like models."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sdfleet.domain.errors import InvalidInput

#: an `allowed_roles` entry that lets every holder of `train:all` see a dataset
EVERYONE = "*"
MAX_IMAGES = 10_000
MAX_CAPTION_LENGTH = 2_000
MAX_REPEATS = 100
MIN_RESOLUTION = 64
MAX_RESOLUTION = 2048
#: image formats a dataset accepts (Pillow's names) and the content type each is served with
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
#: caption sidecars, as kohya sd-scripts reads them
CAPTION_EXTENSIONS = (".txt", ".caption")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}")
#: kohya's DreamBooth folder convention: `10_sks dog` = 10 repeats, class caption "sks dog"
_REPEATS_FOLDER = re.compile(r"(\d+)_(.*)")


class DatasetRejection(enum.StrEnum):
    """Why an image or a set of images is refused; sent as `details.reason` of the 422."""

    NOT_AN_IMAGE = "not_an_image"  #: not a PNG, JPEG or WebP that decodes
    DECOMPRESSION_BOMB = "decompression_bomb"  #: more pixels than the server decodes
    TOO_SMALL = "too_small"  #: too few pixels for the dataset's resolution
    TOO_LARGE = "too_large"  #: more bytes than one image may have
    DUPLICATE = "duplicate"  #: the same bytes are in the dataset already (or twice in one upload)
    EMPTY = "empty"  #: no images (an empty zip, or training on an empty dataset)
    CAPTION_WITHOUT_IMAGE = "caption_without_image"  #: a `.txt` sidecar with no image of its name
    TOO_MANY = "too_many"  #: more images than a dataset may hold
    NOT_A_ZIP = "not_a_zip"  #: an archive that is not a readable zip


def rejected(reason: DatasetRejection, message: str, *, field: str = "file", **details) -> InvalidInput:
    """A 422 naming the field and the reason (a stable code clients can branch on)."""
    return InvalidInput(message, field=field, details={"reason": reason.value, **details})


@dataclass(frozen=True)
class Dataset:
    """A dataset; `content_hash` changes whenever an image, caption or repeat count changes."""

    id: str
    name: str
    user_id: str
    description: str
    resolution: int
    allowed_roles: tuple[str, ...]
    image_count: int
    total_bytes: int
    content_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DatasetImage:
    """One image of a dataset, stored once per dataset under its sha256."""

    id: str
    dataset_id: str
    sha256: str
    filename: str
    caption: str
    repeats: int
    width: int
    height: int
    size: int
    format: str
    created_at: datetime

    @property
    def key(self) -> str:
        """Its object key."""
        return image_key(self.dataset_id, self.sha256)

    @property
    def content_type(self) -> str:
        return IMAGE_FORMATS.get(self.format, "application/octet-stream")


def image_key(dataset_id: str, sha256: str) -> str:
    """Where a dataset image's bytes live in the object store."""
    return f"datasets/{dataset_id}/images/{sha256}"


def content_hash(images: Iterable[DatasetImage]) -> str:
    """sha256 of the images, captions and repeats, independent of upload order."""
    entries = sorted([i.sha256, i.caption, i.repeats] for i in images)
    return hashlib.sha256(json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def check_dataset_name(value: object, *, field: str = "name") -> str:
    """1–100 characters: ASCII letters, digits, space, `_ . -`, starting with a letter or digit."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value != value.strip():
        raise InvalidInput(f"{field} must be 1-100 ASCII letters, digits, spaces, '_', '.' or '-', starting with a "
                           f"letter or digit, got {value!r}", field=field)
    return value


def check_resolution(value: object, *, field: str = "resolution") -> int:
    """A training resolution: a multiple of 64 from 64 to 2048."""
    if type(value) is not int or not MIN_RESOLUTION <= value <= MAX_RESOLUTION or value % 64:
        raise InvalidInput(f"{field} must be a multiple of 64 from {MIN_RESOLUTION} to {MAX_RESOLUTION}, got {value!r}",
                           field=field)
    return value


def check_caption(value: object, *, field: str = "caption") -> str:
    """A caption: at most 2000 characters, no control characters but newlines (which become spaces)."""
    if not isinstance(value, str) or len(value) > MAX_CAPTION_LENGTH:
        raise InvalidInput(f"{field} must be text of at most {MAX_CAPTION_LENGTH} characters", field=field)
    value = " ".join(value.replace("\r", "\n").split("\n")).strip()
    if any(not c.isprintable() for c in value):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return value


def check_repeats(value: object, *, field: str = "repeats") -> int:
    """How often an image is seen per epoch: 1–100."""
    if type(value) is not int or not 1 <= value <= MAX_REPEATS:
        raise InvalidInput(f"{field} must be an integer from 1 to {MAX_REPEATS}, got {value!r}", field=field)
    return value


def too_small(*, width: int, height: int, resolution: int) -> bool:
    """An image is too small when it would need more than 2x upscaling per side: under a quarter of the
    resolution's area, or a side under 64 pixels."""
    return width * height * 4 < resolution * resolution or min(width, height) < MIN_RESOLUTION


def folder_repeats(folder: str) -> tuple[int, str] | None:
    """kohya's `N_name` folder: (N, name) when the folder's last part follows it, else None."""
    last = folder.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    match = _REPEATS_FOLDER.fullmatch(last)
    if match is None:
        return None
    return check_repeats(int(match.group(1)), field=f"folder {last!r}"), match.group(2).strip()


def may_see(*, dataset: Dataset, user_id: str, roles: Iterable[str], is_admin: bool) -> bool:
    """The owner, admins and holders of an allowed role see a dataset."""
    if is_admin or dataset.user_id == user_id:
        return True
    allowed = set(dataset.allowed_roles)
    return EVERYONE in allowed or bool(allowed & set(roles))
