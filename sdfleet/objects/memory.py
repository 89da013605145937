"""MemoryObjectStore: an in-process fake of the ObjectStore for tests."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from sdfleet.objects.base import (
    DEFAULT_CHUNK_SIZE,
    MIN_PART_SIZE,
    ObjectInfo,
    ObjectNotFound,
    PartInfo,
    UploadNotFound,
    iter_chunks,
    resolve_range,
    validate_key,
    validate_part_number,
    validate_prefix,
    validate_range,
)
from sdfleet.objects.multipart import check_completion, multipart_etag
from sdfleet.objects.signing import ServerSignedUrls, UrlSigner


@dataclass(frozen=True)
class _StoredObject:
    data: bytes
    info: ObjectInfo


@dataclass
class _Upload:
    key: str
    content_type: str | None
    started: datetime
    parts: dict[int, bytes] = field(default_factory=dict)


class MemoryObjectStore(ServerSignedUrls):
    """Keeps objects in a dict; follows the same contract (and S3's multipart rules) as the real stores."""

    def __init__(
        self,
        *,
        secret_key: bytes = b"memory-object-store-key",
        public_base_url: str = "http://testserver",
        min_part_size: int = MIN_PART_SIZE,
    ) -> None:
        self._objects: dict[str, _StoredObject] = {}
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()
        self._signer = UrlSigner(secret_key=secret_key, public_base_url=public_base_url)
        self._min_part_size = min_part_size

    def put(self, key: str, data: BinaryIO | bytes, *, content_type: str | None = None) -> ObjectInfo:
        """Store `data` under `key`."""
        validate_key(key)
        payload = b"".join(iter_chunks(data))
        return self._store(key, payload, content_type=content_type, etag=hashlib.md5(payload).hexdigest())

    def open_range(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Stream bytes `start..end` (inclusive)."""
        validate_range(start=start, end=end, chunk_size=chunk_size)
        stored = self._get(key)
        first, stop = resolve_range(key=key, size=stored.info.size, start=start, end=end)
        return iter_chunks(memoryview(stored.data)[first:stop], chunk_size=chunk_size)

    def read_bytes(self, key: str) -> bytes:
        """Return a whole object."""
        return self._get(key).data

    def head(self, key: str) -> ObjectInfo:
        """Return the object's metadata."""
        return self._get(key).info

    def exists(self, key: str) -> bool:
        """Tell whether the key holds an object."""
        validate_key(key)
        return key in self._objects

    def delete(self, key: str) -> None:
        """Delete the object if present."""
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`."""
        validate_prefix(prefix)
        with self._lock:
            doomed = [key for key in self._objects if key.startswith(prefix)]
            for key in doomed:
                del self._objects[key]
        return len(doomed)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield objects under `prefix`, sorted by key."""
        validate_prefix(prefix)
        with self._lock:
            infos = [s.info for k, s in self._objects.items() if k.startswith(prefix)]
        return iter(sorted(infos, key=lambda info: info.key))

    def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy an object to another key."""
        validate_key(dst)
        stored = self._get(src)
        return self._store(dst, stored.data, content_type=stored.info.content_type, etag=stored.info.etag)

    def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        """Start a multipart upload."""
        validate_key(key)
        upload_id = uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = _Upload(key=key, content_type=content_type, started=datetime.now(UTC))
        return upload_id

    def upload_part(self, key: str, upload_id: str, part_number: int, data: BinaryIO | bytes) -> PartInfo:
        """Store (or replace) one part."""
        validate_part_number(part_number)
        payload = b"".join(iter_chunks(data))
        with self._lock:
            self._upload(key, upload_id).parts[part_number] = payload
        return PartInfo(part_number=part_number, size=len(payload), etag=hashlib.md5(payload).hexdigest())

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """Return the uploaded parts by part number."""
        with self._lock:
            parts = dict(self._upload(key, upload_id).parts)
        return [
            PartInfo(part_number=n, size=len(data), etag=hashlib.md5(data).hexdigest())
            for n, data in sorted(parts.items())
        ]

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> ObjectInfo:
        """Assemble the listed parts into the object."""
        with self._lock:
            upload = self._upload(key, upload_id)
            stored = {n: PartInfo(part_number=n, size=len(d), etag=hashlib.md5(d).hexdigest())
                      for n, d in upload.parts.items()}
            check_completion(parts, stored=stored, min_part_size=self._min_part_size)
            payload = b"".join(upload.parts[p.part_number] for p in parts)
            del self._uploads[upload_id]
        return self._store(key, payload, content_type=upload.content_type, etag=multipart_etag(parts))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Discard an upload; unknown uploads are ignored."""
        validate_key(key)
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and upload.key == key:
                del self._uploads[upload_id]

    def purge_incomplete(self, *, older_than: timedelta) -> int:
        """Drop uploads started more than `older_than` ago."""
        cutoff = datetime.now(UTC) - older_than
        with self._lock:
            stale = [upload_id for upload_id, upload in self._uploads.items() if upload.started < cutoff]
            for upload_id in stale:
                del self._uploads[upload_id]
        return len(stale)

    def check(self) -> None:
        """Always usable."""

    def _store(self, key: str, payload: bytes, *, content_type: str | None, etag: str | None) -> ObjectInfo:
        info = ObjectInfo(
            key=key, size=len(payload), etag=etag, content_type=content_type, modified=datetime.now(UTC)
        )
        with self._lock:
            self._objects[key] = _StoredObject(data=payload, info=info)
        return info

    def _get(self, key: str) -> _StoredObject:
        validate_key(key)
        stored = self._objects.get(key)
        if stored is None:
            raise ObjectNotFound(f"no object at key {key!r}")
        return stored

    def _upload(self, key: str, upload_id: str) -> _Upload:
        validate_key(key)
        upload = self._uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise UploadNotFound(f"no multipart upload {upload_id!r} for key {key!r}")
        return upload
