"""Resumable model uploads: create, send parts (idempotent, checksummed), resume, complete, expire."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sdfleet.domain.accounts import Principal
from sdfleet.domain.checkpoints import (
    MIN_MODEL_BYTES,
    Checkpoint,
    Upload,
    UploadPart,
    UploadStatus,
    check_model_name,
    is_pickle_name,
    parse_model_type,
    safetensors_name,
)
from sdfleet.domain.errors import Conflict, DomainError, InvalidInput
from sdfleet.domain.ids import new_id
from sdfleet.domain.permissions import Permission
from sdfleet.objects.base import MAX_PART_NUMBER, MIN_PART_SIZE, PartInfo
from sdfleet.services.authorization import authorize, fetch_owned
from sdfleet.services.checkpoints import CheckpointService
from sdfleet.store.checkpoints import SqlUploads

log = logging.getLogger("sdfleet.registry.uploads")

_SHA256 = re.compile(r"[0-9a-f]{64}")
MiB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class UploadPolicy:
    """How uploads are cut and how long they live."""

    part_size: int = 64 * MiB
    expiry: timedelta = timedelta(hours=24)
    max_bytes: int = 64 * 1024**3
    #: lifetime of presigned part URLs (S3 only)
    presign_seconds: int = 3600


@dataclass(frozen=True)
class UploadRequest:
    """What a client announces before sending a file."""

    filename: str
    model_type: str
    size: int
    sha256: str | None = None
    name: str | None = None
    allowed_roles: list[str] | None = None


@dataclass(frozen=True)
class UploadView:
    """An upload as shown to its owner: the record plus presigned part URLs where the store has them."""

    upload: Upload
    part_urls: dict[int, str]


class _RunningHashes:
    """Whole-file sha256 states of open uploads, advanced while parts arrive in order (in memory only: after a
    restart, or when parts came out of order, completion hashes the assembled file instead)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: upload id -> (the sha256s of parts 1..n in the order hashed, the running hash of those parts)
        self._states: dict[str, tuple[tuple[str, ...], hashlib._Hash]] = {}

    def continuing(self, upload_id: str, part_number: int):
        """A copy of the upload's hash to feed part `part_number` into, or None when it is not the next part."""
        with self._lock:
            hashed, digest = self._states.get(upload_id, ((), None))
            if part_number != len(hashed) + 1:
                return None
            return hashlib.sha256() if digest is None else digest.copy()

    def advance(self, upload_id: str, part: UploadPart, digest) -> None:
        """Record that parts 1..part.part_number are in `digest` (unless another request got there first)."""
        with self._lock:
            hashed, _ = self._states.get(upload_id, ((), None))
            if part.part_number == len(hashed) + 1:
                self._states[upload_id] = ((*hashed, part.sha256), digest)

    def finish(self, upload: Upload) -> str | None:
        """The whole-file sha256 when every part went through in order and the stored parts are the ones hashed
        (not replaced by a racing request), else None; forgets the state."""
        with self._lock:
            hashed, digest = self._states.pop(upload.id, ((), None))
        stored = tuple(p.sha256 for p in sorted(upload.parts, key=lambda p: p.part_number))
        return digest.hexdigest() if digest is not None and hashed == stored else None

    def forget(self, upload_id: str) -> None:
        """Drop an upload's state (expired or failed)."""
        with self._lock:
            self._states.pop(upload_id, None)


class _CheckedPart:
    """A file-like view of a part's body that refuses more or fewer bytes than expected, or a wrong checksum."""

    def __init__(
        self, chunks: Iterable[bytes], *, expected: int, sha256: str | None, part_number: int, whole=None
    ) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self._expected = expected
        self._sha256 = sha256
        self._part_number = part_number
        self.digest = hashlib.sha256()
        #: the whole file's running sha256 when this is the next part in order, else None
        self.whole = whole
        self.count = 0
        self._done = False

    def read(self, n: int = -1) -> bytes:
        while not self._buffer and not self._done:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._finish()
                break
            self.count += len(chunk)
            if self.count > self._expected:
                raise InvalidInput(
                    f"part {self._part_number} must be exactly {self._expected} bytes, got more",
                    field="part", details={"reason": "wrong_part_size"},
                )
            self.digest.update(chunk)
            if self.whole is not None:
                self.whole.update(chunk)
            self._buffer = chunk
        if n is None or n < 0 or n >= len(self._buffer):
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _finish(self) -> None:
        self._done = True
        if self.count != self._expected:
            raise InvalidInput(
                f"part {self._part_number} must be exactly {self._expected} bytes, got {self.count} "
                "(a truncated body?)",
                field="part", details={"reason": "wrong_part_size"},
            )
        if self._sha256 is not None and self.digest.hexdigest() != self._sha256:
            raise InvalidInput(
                f"part {self._part_number} sha256 is {self.digest.hexdigest()}, the client declared {self._sha256}",
                field="part", details={"reason": "part_checksum_mismatch"},
            )


def check_sha256(value: str | None, *, field: str) -> str | None:
    """A lowercase hex sha256, or None."""
    if value is None:
        return None
    value = value.strip().lower()
    if not _SHA256.fullmatch(value):
        raise InvalidInput(f"{field} must be 64 hexadecimal digits", field=field)
    return value


class UploadService:
    """Resumable uploads on top of the object store's multipart uploads (real S3 multipart on S3)."""

    def __init__(
        self, *, store: SqlUploads, objects, checkpoints: CheckpointService, clock: Callable[[], datetime],
        policy: UploadPolicy,
    ) -> None:
        self._store = store
        self._objects = objects
        self._checkpoints = checkpoints
        self._clock = clock
        self._policy = policy
        self._running = _RunningHashes()

    # 1. Create

    def create(self, principal: Principal, request: UploadRequest) -> UploadView:
        """Announce a file: returns the upload id and the part size to cut it into."""
        authorize(principal, Permission.CHECKPOINT_ALL)
        model_type = parse_model_type(request.model_type)
        check_model_name(request.filename, field="filename")
        name = request.name if request.name is not None else request.filename
        check_model_name(name)
        if is_pickle_name(request.filename) and not is_pickle_name(name):
            raise InvalidInput("a pickle file's name must keep its extension; it becomes .safetensors when converted",
                               field="name")
        if isinstance(request.size, bool) or not isinstance(request.size, int) or request.size < MIN_MODEL_BYTES:
            raise InvalidInput(f"size must be at least {MIN_MODEL_BYTES} bytes (no model file is smaller), "
                               f"got {request.size!r}", field="size")
        if request.size > self._policy.max_bytes:
            raise InvalidInput(f"size must be at most {self._policy.max_bytes} bytes, got {request.size}",
                               field="size")
        declared = check_sha256(request.sha256, field="sha256")
        roles = self._checkpoints.default_roles(principal, request.allowed_roles)
        self._checkpoints.check_name_free(model_type, safetensors_name(name), principal)
        self.expire_abandoned()
        # 2. Pick a part size S3 accepts: at least 5 MiB, at most 10,000 parts
        part_size = max(self._policy.part_size, MIN_PART_SIZE, -(-request.size // MAX_PART_NUMBER))
        upload_id = new_id()
        key = f"uploads/{upload_id}/file"
        store_upload_id = self._objects.create_multipart(key, content_type="application/octet-stream")
        now = self._clock()
        upload = Upload(
            id=upload_id, user_id=principal.user_id, filename=request.filename, name=name, model_type=model_type,
            size=request.size, part_size=part_size, declared_sha256=declared, allowed_roles=roles,
            status=UploadStatus.OPEN, object_key=key, store_upload_id=store_upload_id, created_at=now,
            expires_at=now + self._policy.expiry,
        )
        try:
            upload = self._store.add(upload)
        except BaseException:
            with contextlib.suppress(Exception):
                self._objects.abort_multipart(key, store_upload_id)
            raise
        return self._view(upload)

    # 2. Parts

    def get(self, principal: Principal, upload_id: str) -> UploadView:
        """The upload with the parts received so far, so a client knows what to resend."""
        upload = self._owned(principal, upload_id)
        return self._view(upload)

    def put_part(
        self, principal: Principal, upload_id: str, part_number: int, body: Iterable[bytes], *,
        sha256: str | None = None, content_length: int | None = None,
    ) -> UploadPart:
        """Store one part, exactly its announced size; the same bytes again are accepted, other bytes are 409."""
        upload = self._owned(principal, upload_id)
        self._check_open(upload)
        if isinstance(part_number, bool) or not 1 <= part_number <= upload.part_count:
            raise InvalidInput(
                f"part number must be between 1 and {upload.part_count} for this upload, got {part_number}",
                field="part_number",
            )
        expected = upload.expected_part_size(part_number)
        declared = check_sha256(sha256, field="sha256")
        if content_length is not None and content_length != expected:
            raise InvalidInput(
                f"part {part_number} must be exactly {expected} bytes, got a body of {content_length}",
                field="part", details={"reason": "wrong_part_size", "expected": expected},
            )
        previous = next((p for p in upload.parts if p.part_number == part_number and p.sha256), None)
        if previous is not None and declared is not None and declared != previous.sha256:
            raise Conflict(
                f"part {part_number} was already received with sha256 {previous.sha256}; parts cannot change",
                details={"part_number": part_number, "sha256": previous.sha256},
            )
        whole = None if previous is not None else self._running.continuing(upload.id, part_number)
        reader = _CheckedPart(body, expected=expected, sha256=declared, part_number=part_number, whole=whole)
        if previous is not None:
            _consume(reader)
            if reader.digest.hexdigest() != previous.sha256:
                raise Conflict(
                    f"part {part_number} was already received with other bytes (sha256 {previous.sha256})",
                    details={"part_number": part_number, "sha256": previous.sha256},
                )
            return previous
        info = self._objects.upload_part(upload.object_key, upload.store_upload_id, part_number, reader)
        part = UploadPart(part_number=part_number, size=reader.count, sha256=reader.digest.hexdigest(), etag=info.etag)
        current = self._store.put_part(upload.id, part)
        if current is None or current.status is not UploadStatus.OPEN:
            raise Conflict(f"upload {upload_id} is {current.status if current else 'gone'}; no more parts")
        if whole is not None:
            self._running.advance(upload.id, part, whole)
        return part

    # 3. Complete

    def complete(
        self, principal: Principal, upload_id: str, *, parts: list[int] | None = None, sha256: str | None = None
    ) -> Checkpoint:
        """Assemble the parts, check size and hash, inspect the file and register it as a checkpoint."""
        upload = self._owned(principal, upload_id)
        self._check_open(upload)
        declared = check_sha256(sha256, field="sha256") or upload.declared_sha256
        if upload.declared_sha256 and declared != upload.declared_sha256:
            raise InvalidInput("sha256 differs from the one declared when the upload was created", field="sha256")
        # 1. Every part is there, once, in order, and they add up to the announced size
        if parts is not None:
            _check_listed_parts(parts)
        if upload.missing_parts:
            missing = upload.missing_parts
            shown = ", ".join(str(n) for n in missing[:20]) + (" …" if len(missing) > 20 else "")
            raise InvalidInput(
                f"upload is incomplete: {len(missing)} of {upload.part_count} parts missing ({shown})",
                field="parts", details={"reason": "truncated_upload", "missing_parts": missing[:1000]},
            )
        if parts is not None and parts != list(range(1, upload.part_count + 1)):
            raise InvalidInput(f"parts must list 1..{upload.part_count}, got {len(parts)} part numbers",
                               field="parts")
        received = sum(p.size for p in upload.parts)
        if received != upload.size:
            raise InvalidInput(f"received {received} bytes but the upload announced {upload.size}", field="size",
                               details={"reason": "wrong_size"})
        # 2. Only one completion runs
        if not self._store.set_status(upload.id, UploadStatus.COMPLETING, expect=UploadStatus.OPEN):
            raise Conflict(f"upload {upload_id} is already being completed")
        try:
            checkpoint = self._assemble_and_register(upload, declared=declared, principal=principal)
        except BaseException as exc:
            self._running.forget(upload.id)
            reason = exc.message if isinstance(exc, DomainError) else "internal error while completing"
            self._store.set_status(upload.id, UploadStatus.FAILED, error=reason)
            raise
        self._store.completed(upload.id, checkpoint_id=checkpoint.id, now=self._clock(), user_id=upload.user_id,
                              data={"upload_id": upload.id, "checkpoint_id": checkpoint.id, "name": checkpoint.name,
                                    "model_type": checkpoint.model_type.value, "sha256": checkpoint.sha256,
                                    "size": checkpoint.size})
        return checkpoint

    def _assemble_and_register(self, upload: Upload, *, declared: str | None, principal: Principal) -> Checkpoint:
        key = upload.object_key
        infos = [PartInfo(part_number=p.part_number, size=p.size, etag=p.etag) for p in upload.parts]
        try:
            self._objects.complete_multipart(key, upload.store_upload_id, infos)
        except BaseException:
            with contextlib.suppress(Exception):
                self._objects.abort_multipart(key, upload.store_upload_id)
            raise
        intake = None
        try:
            stored = self._objects.head(key).size
            if stored != upload.size:
                raise InvalidInput(f"assembled file is {stored} bytes, the upload announced {upload.size}",
                                   field="size", details={"reason": "wrong_size"})
            # Parts that arrived in order were hashed on the way in: no second pass over the file
            running = self._running.finish(upload)
            intake = self._checkpoints.intake.inspect_object(key, declared=upload.model_type, sha256=running)
            if declared is not None and intake.received_sha256 != declared:
                raise InvalidInput(
                    f"file sha256 is {intake.received_sha256}, the client declared {declared}", field="sha256",
                    details={"reason": "hash_mismatch"},
                )
            return self._checkpoints.register(
                intake, name=upload.name, model_type=upload.model_type, allowed_roles=upload.allowed_roles,
                created_by=principal.user_id, source="upload", actor=principal,
            )
        finally:
            self._checkpoints.intake.discard(intake)
            with contextlib.suppress(Exception):
                self._objects.delete(key)

    # 4. Expiry

    def expire_abandoned(self) -> int:
        """Abort uploads past their expiry and drop their parts; return how many."""
        stale = self._store.expired(self._clock())
        for upload in stale:
            changed = self._store.set_status(upload.id, UploadStatus.EXPIRED, expect=UploadStatus.OPEN,
                                             error="upload expired unfinished")
            self._running.forget(upload.id)
            if changed:
                with contextlib.suppress(Exception):
                    self._objects.abort_multipart(upload.object_key, upload.store_upload_id)
        return len(stale)

    # Internals

    def _owned(self, principal: Principal, upload_id: str) -> Upload:
        return self._with_direct_parts(fetch_owned(principal, Permission.CHECKPOINT_ALL, upload_id,
                                                   fetch=self._store.get, what="upload"))

    def _with_direct_parts(self, upload: Upload) -> Upload:
        """Add parts a client PUT straight to a presigned URL (the store knows them, the database does not)."""
        if upload.status is not UploadStatus.OPEN or not upload.missing_parts:
            return upload
        if self._objects.presign_part_url(upload.object_key, upload.store_upload_id, 1, expires_in=60) is None:
            return upload
        missing = set(upload.missing_parts)
        direct = [
            UploadPart(part_number=p.part_number, size=p.size, sha256="", etag=p.etag)
            for p in self._objects.list_parts(upload.object_key, upload.store_upload_id)
            if p.part_number in missing and p.size == upload.expected_part_size(p.part_number)
        ]
        if not direct:
            return upload
        parts = tuple(sorted(upload.parts + tuple(direct), key=lambda p: p.part_number))
        return dataclasses.replace(upload, parts=parts)

    def _check_open(self, upload: Upload) -> None:
        if upload.status is UploadStatus.OPEN and upload.expires_at <= self._clock():
            self.expire_abandoned()
            raise Conflict(f"upload {upload.id} expired at {upload.expires_at.isoformat()}; start a new one",
                           details={"status": UploadStatus.EXPIRED.value})
        if upload.status is not UploadStatus.OPEN:
            detail = f" ({upload.error})" if upload.error else ""
            raise Conflict(f"upload {upload.id} is {upload.status.value}{detail}; it accepts no more parts",
                           details={"status": upload.status.value, "checkpoint_id": upload.checkpoint_id})

    def _view(self, upload: Upload) -> UploadView:
        urls: dict[int, str] = {}
        if upload.status is UploadStatus.OPEN:
            for n in upload.missing_parts[:100]:
                url = self._objects.presign_part_url(upload.object_key, upload.store_upload_id, n,
                                                     expires_in=self._policy.presign_seconds)
                if url is None:
                    break
                urls[n] = url
        return UploadView(upload=upload, part_urls=urls)


def _consume(reader: _CheckedPart) -> None:
    while reader.read(1 << 20):
        pass


def _check_listed_parts(parts: list[int]) -> None:
    previous = 0
    for n in parts:
        if isinstance(n, bool) or not isinstance(n, int):
            raise InvalidInput("parts must be part numbers", field="parts")
        if n <= previous:
            raise InvalidInput(
                f"parts must be in ascending order without repeats, got {n} after {previous}", field="parts",
                details={"reason": "part_order"},
            )
        previous = n
