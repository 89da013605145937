"""The model registry's records: checkpoints, resumable uploads and URL imports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

# One ModelType for the whole code base: the model-file layer's (the engine and the worker read it too).
from sdfleet.modelfiles.types import ModelType

#: an `allowed_roles` entry that lets every signed-in user see a model
EVERYONE = "*"


class CheckpointStatus(enum.StrEnum):
    """Whether a registered model can be used."""

    ACTIVE = "active"  #: registered, blob stored, usable by jobs
    DISABLED = "disabled"  #: kept but not offered to jobs


class UploadStatus(enum.StrEnum):
    """Where a resumable upload stands."""

    OPEN = "open"  #: accepting parts
    COMPLETING = "completing"  #: parts being assembled, hashed and inspected
    COMPLETED = "completed"  #: registered as a checkpoint
    FAILED = "failed"  #: refused at completion; its parts are gone
    EXPIRED = "expired"  #: abandoned past its expiry; its parts are gone


class ImportStatus(enum.StrEnum):
    """Where a URL import stands."""

    QUEUED = "queued"  #: waiting for a free import thread of the server holding its lease
    RUNNING = "running"  #: downloading or inspecting, on the server holding its lease
    SUCCEEDED = "succeeded"  #: registered as a checkpoint
    FAILED = "failed"  #: refused or broken; `error` says why


@dataclass(frozen=True)
class Checkpoint:
    """A registered model file; `name` (with its extension) is what graphs and A1111 payloads reference."""

    id: str
    name: str
    model_type: ModelType
    sha256: str
    short_hash: str
    architecture: str
    layout: str
    precision: str
    size: int
    format: str
    tensor_count: int
    status: CheckpointStatus
    allowed_roles: tuple[str, ...]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    source: str = "upload"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadPart:
    """One part received for a resumable upload."""

    part_number: int
    size: int
    sha256: str
    etag: str


@dataclass(frozen=True)
class Upload:
    """A resumable upload: what will be registered, how it is cut into parts, and how far it got."""

    id: str
    user_id: str
    filename: str
    name: str
    model_type: ModelType
    size: int
    part_size: int
    declared_sha256: str | None
    allowed_roles: tuple[str, ...]
    status: UploadStatus
    object_key: str
    store_upload_id: str
    created_at: datetime
    expires_at: datetime
    parts: tuple[UploadPart, ...] = ()
    checkpoint_id: str | None = None
    error: str | None = None

    @property
    def part_count(self) -> int:
        """How many parts the file is cut into (the last one may be shorter)."""
        return max(1, -(-self.size // self.part_size))

    def expected_part_size(self, part_number: int) -> int:
        """The exact size part `part_number` must have."""
        if part_number < self.part_count:
            return self.part_size
        return self.size - (self.part_count - 1) * self.part_size

    @property
    def missing_parts(self) -> list[int]:
        """Part numbers not received yet."""
        received = {p.part_number for p in self.parts}
        return [n for n in range(1, self.part_count + 1) if n not in received]


@dataclass(frozen=True)
class ImportJob:
    """A model being fetched from a URL, with its progress."""

    id: str
    user_id: str
    url: str
    model_type: ModelType
    name: str | None
    allowed_roles: tuple[str, ...]
    status: ImportStatus
    bytes_done: int
    bytes_total: int | None
    created_at: datetime
    updated_at: datetime
    checkpoint_id: str | None = None
    error: str | None = None
    #: how many times a server took it on (the one that accepted it, then any that took over an expired lease;
    #: an import handed back by a server stopping cleanly does not count that server's try)
    attempts: int = 0


#: file extensions a model name may end with
SAFE_EXTENSIONS = (".safetensors",)
#: pickle formats: converted to safetensors in an isolated process, never unpickled in the server
PICKLE_EXTENSIONS = (".ckpt", ".pt", ".pth", ".bin")
MAX_NAME_LENGTH = 200
#: no model file is smaller: an 8-byte length, a JSON header naming a tensor, its data
MIN_MODEL_BYTES = 64


def parse_model_type(value: str, *, field: str = "type") -> ModelType:
    """Return the ModelType spelled `value`; an unknown one is an InvalidInput listing the accepted names."""
    from sdfleet.domain.errors import InvalidInput

    try:
        return ModelType(value)
    except ValueError:
        accepted = ", ".join(t.value for t in ModelType)
        raise InvalidInput(f"{field} must be one of {accepted}; got {value!r}", field=field) from None


def check_model_name(value: str, *, field: str = "name") -> str:
    """A model name is a file name: printable, no path separators, not hidden, with a model file extension."""
    from sdfleet.domain.errors import InvalidInput

    extensions = ", ".join(SAFE_EXTENSIONS + PICKLE_EXTENSIONS)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidInput(f"{field} must be a file name of 1-{MAX_NAME_LENGTH} characters", field=field)
    if "/" in value or "\\" in value or value.startswith(".") or value != value.strip():
        raise InvalidInput(
            f"{field} must be a plain file name (no '/', '\\', leading dot or surrounding spaces), got {value!r}",
            field=field,
        )
    if any(not c.isprintable() for c in value):
        raise InvalidInput(f"{field} must not contain control or invisible format characters", field=field)
    if not value.lower().endswith(SAFE_EXTENSIONS + PICKLE_EXTENSIONS) or "." not in value[:-1]:
        raise InvalidInput(f"{field} must end with a model file extension ({extensions}), got {value!r}", field=field)
    stem = value.rsplit(".", 1)[0]
    if not stem.strip(" ."):
        raise InvalidInput(f"{field} needs a name before its extension, got {value!r}", field=field)
    return value


def is_pickle_name(name: str) -> bool:
    """Whether a file name has a pickle extension (.ckpt, .pt, .pth, .bin)."""
    return name.lower().endswith(PICKLE_EXTENSIONS)


def safetensors_name(name: str) -> str:
    """The name a converted pickle is registered under: same stem, `.safetensors`."""
    return name.rsplit(".", 1)[0] + ".safetensors" if is_pickle_name(name) else name
