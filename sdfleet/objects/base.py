"""The ObjectStore protocol, its records and its errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, Protocol, runtime_checkable

#: Smallest size S3 accepts for every part but the last of a multipart upload.
MIN_PART_SIZE = 5 * 1024 * 1024
#: Part numbers S3 accepts.
MAX_PART_NUMBER = 10_000
#: Chunk size used when streaming between a file object and a backend.
DEFAULT_CHUNK_SIZE = 1 << 20

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
#: First key segment reserved for the local store's staging area (temp files, metadata, parts).
RESERVED_SEGMENT = ".sdfleet"


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one stored object."""

    key: str
    size: int
    etag: str | None
    content_type: str | None
    modified: datetime


@dataclass(frozen=True)
class PartInfo:
    """One uploaded part of a multipart upload."""

    part_number: int
    size: int
    etag: str


class ObjectNotFound(KeyError):
    """The key (or multipart upload) does not exist."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; show the message as written.
        return str(self.args[0]) if self.args else "object not found"


class UploadNotFound(ObjectNotFound):
    """The multipart upload id is unknown, completed or aborted."""


class InvalidObjectKey(ValueError):
    """A key or prefix that could escape the store or is not portable across backends."""


class InvalidRange(ValueError):
    """A byte range that does not fit the object (HTTP 416)."""


class InvalidMultipart(ValueError):
    """A multipart completion that S3 would refuse: bad order, unknown part, wrong etag, part too small."""


class ObjectStoreUnavailable(RuntimeError):
    """The backend cannot be used: unwritable directory, missing bucket, unreachable endpoint."""


@runtime_checkable
class ObjectStore(Protocol):
    """Blob storage addressed by keys such as `models/{sha256}`; streams, never whole files in memory."""

    def put(self, key: str, data: BinaryIO | bytes, *, content_type: str | None = None) -> ObjectInfo:
        """Store `data` under `key`, streaming from a file object in chunks."""
        ...

    def open_range(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Stream bytes `start..end` (inclusive, like HTTP Range); raises before yielding."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """Return a whole (small) object."""
        ...

    def head(self, key: str) -> ObjectInfo:
        """Return the object's metadata or raise ObjectNotFound."""
        ...

    def exists(self, key: str) -> bool:
        """Tell whether the key holds an object."""
        ...

    def delete(self, key: str) -> None:
        """Delete the object; a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix`; return how many."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield objects whose key starts with `prefix`, sorted by key."""
        ...

    def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy an object to another key inside the store."""
        ...

    def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        """Start a multipart upload and return its upload id."""
        ...

    def upload_part(self, key: str, upload_id: str, part_number: int, data: BinaryIO | bytes) -> PartInfo:
        """Store one part; uploading the same part number again replaces it."""
        ...

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """Return the parts uploaded so far, by part number."""
        ...

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> ObjectInfo:
        """Assemble the listed parts (ascending part numbers) into the object."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Discard an upload and its parts; an unknown upload is not an error."""
        ...

    def presign_part_url(self, key: str, upload_id: str, part_number: int, *, expires_in: int) -> str | None:
        """Return a URL a client can PUT the part to directly, or None when it must go through the API."""
        ...

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """Return an expiring URL that downloads the object without other credentials."""
        ...

    def verify_download(
        self, key: str, *, expires: int, signature: str, filename: str | None = None
    ) -> bool:
        """Check a signed server download URL's parameters (False on backends that presign)."""
        ...

    def purge_incomplete(self, *, older_than: timedelta) -> int:
        """Abort multipart uploads (and drop temp files) started before `older_than` ago; return how many."""
        ...

    def check(self) -> None:
        """Raise ObjectStoreUnavailable with one clear line when the backend cannot be used."""
        ...


def validate_key(key: str) -> str:
    """Return `key` if it is a safe, portable object key; raise InvalidObjectKey naming the problem."""
    if not isinstance(key, str):
        raise InvalidObjectKey(f"object key must be a str, got {type(key).__name__}")
    if not key:
        raise InvalidObjectKey("object key must not be empty")
    _validate_characters(key, what="object key")
    if key.endswith("/"):
        raise InvalidObjectKey(f"object key must not end with '/', got {key!r}")
    _validate_segments(key.split("/"), what="object key", original=key)
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it is a safe key prefix ('' means everything); raise InvalidObjectKey."""
    if not isinstance(prefix, str):
        raise InvalidObjectKey(f"object key prefix must be a str, got {type(prefix).__name__}")
    if not prefix:
        return prefix
    _validate_characters(prefix, what="object key prefix")
    segments = prefix.split("/")
    if segments[-1] == "":
        segments = segments[:-1]  # 'outputs/' lists a folder
    # The last segment may be a partial name ('outputs/job1' matches 'outputs/job10/…'), but '.' or '..'
    # there would still name a directory outside the prefix on the local store.
    _validate_segments(segments, what="object key prefix", original=prefix)
    return prefix


def _validate_characters(value: str, *, what: str) -> None:
    if value.startswith("/"):
        raise InvalidObjectKey(f"{what} must be relative (no leading '/'), got {value!r}")
    if "\\" in value:
        raise InvalidObjectKey(f"{what} must use '/' as separator, not '\\', got {value!r}")
    if _CONTROL_CHARS.search(value):
        raise InvalidObjectKey(f"{what} must not contain NUL or control characters, got {value!r}")
    if len(value.encode("utf-8")) > 1024:
        raise InvalidObjectKey(f"{what} must be at most 1024 bytes of UTF-8, got {len(value.encode())}")


def _validate_segments(segments: list[str], *, what: str, original: str) -> None:
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidObjectKey(
                f"{what} must not contain empty, '.' or '..' segments, got {original!r}"
            )
    if segments and segments[0] == RESERVED_SEGMENT:
        raise InvalidObjectKey(
            f"{what} must not start with the reserved '{RESERVED_SEGMENT}/', got {original!r}"
        )


def validate_part_number(part_number: int) -> int:
    """Return `part_number` if S3 accepts it (1..10000); raise ValueError naming it."""
    if isinstance(part_number, bool) or not isinstance(part_number, int):
        raise ValueError(f"part_number must be an int, got {type(part_number).__name__}")
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise ValueError(f"part_number must be between 1 and {MAX_PART_NUMBER}, got {part_number}")
    return part_number


def validate_range(*, start: int, end: int | None, chunk_size: int) -> None:
    """Reject a range that is malformed whatever the object's size."""
    if start < 0:
        raise InvalidRange(f"start must be >= 0, got {start}")
    if end is not None and end < start:
        raise InvalidRange(f"end must be >= start ({start}), got {end}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")


def resolve_range(*, key: str, size: int, start: int, end: int | None) -> tuple[int, int]:
    """Return the half-open byte span [first, stop) of a range on an object of `size` bytes."""
    if start == 0 and end is None:
        return 0, size
    if start >= size:
        raise InvalidRange(f"range start {start} is beyond the end of {key!r} ({size} bytes)")
    stop = size if end is None else min(end + 1, size)
    return start, stop


def iter_chunks(data: BinaryIO | bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Yield `data` in chunks of at most `chunk_size` bytes (bytes or a readable file object)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for offset in range(0, len(view), chunk_size):
            yield bytes(view[offset : offset + chunk_size])
        return
    if not hasattr(data, "read"):
        raise TypeError(f"data must be bytes or a readable binary file object, got {type(data).__name__}")
    while True:
        chunk = data.read(chunk_size)
        if not chunk:
            return
        if isinstance(chunk, str):
            raise TypeError("data must be opened in binary mode, got a text stream")
        yield chunk


def read_exactly(data: BinaryIO, size: int) -> bytes:
    """Read up to `size` bytes, looping over short reads (sockets, pipes); fewer only at end of stream."""
    pieces: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = data.read(remaining)
        if not chunk:
            break
        pieces.append(chunk)
        remaining -= len(chunk)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)  # the common one-read case copies nothing
