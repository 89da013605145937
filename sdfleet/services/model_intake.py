"""Model intake: hash and inspect an incoming file, convert pickles in isolation, place the blob by sha256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sdfleet.domain.checkpoints import ModelType
from sdfleet.domain.errors import InvalidInput
from sdfleet.modelfiles.architecture import as_declared, detect_architecture
from sdfleet.modelfiles.convert import convert_pickle_to_safetensors
from sdfleet.modelfiles.errors import ModelFileError
from sdfleet.modelfiles.inspect import ModelInspection, describe_precision, inspect_model_file
from sdfleet.modelfiles.safetensors_header import SafetensorsHeader, read_safetensors_header
from sdfleet.modelfiles.types import ModelType as FileModelType

CHUNK_BYTES = 1 << 20


#: the object-store folder of model blobs, one `<sha256>` object each
MODEL_BLOBS = "models"


def blob_key(sha256: str) -> str:
    """The object key of a model blob."""
    return f"{MODEL_BLOBS}/{sha256}"


@dataclass(frozen=True)
class Intake:
    """An inspected incoming file: what it is, the sha256 of the bytes received, and where its content is."""

    inspection: ModelInspection
    #: sha256 of the bytes as received (differs from inspection.sha256 when a pickle was converted)
    received_sha256: str
    received_size: int
    converted: bool
    #: a local file holding the content to store (a converted pickle, an import), or None
    local_path: Path | None = None
    #: an object in the store holding the content to store (an assembled upload), or None
    object_key: str | None = None


class _HashingReader:
    """A read()-able view of an iterator of chunks that hashes every byte passing through."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.digest = hashlib.sha256()
        self.count = 0

    def peek(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer += chunk
        return self._buffer[:n]

    def read(self, n: int = -1) -> bytes:
        if not self._buffer:
            self._buffer = next(self._chunks, b"")
        if n < 0 or n >= len(self._buffer):
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        self.digest.update(out)
        self.count += len(out)
        return out

    def drain(self) -> None:
        self.read()
        for chunk in self._chunks:
            self.digest.update(chunk)
            self.count += len(chunk)


def sniff_format(head: bytes) -> str:
    """Tell a file's format from its first bytes: safetensors, pickle, zip (torch.save) or unknown."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def _refusal(error: ModelFileError) -> InvalidInput:
    return InvalidInput(error.message, field="file", details={"reason": error.code})


def _detect(header: SafetensorsHeader, *, declared: ModelType) -> tuple[FileModelType, str, str]:
    if not header.tensors:
        raise InvalidInput("file holds no tensors", field="file", details={"reason": "not_a_model"})
    detection = detect_architecture(header.shapes())
    if detection is None:
        sample = ", ".join(sorted(header.tensors)[:3])
        raise InvalidInput(
            f"file is not a model of a known type: its tensor names match none (first names: {sample})",
            field="file",
            details={"reason": "not_a_model"},
        )
    detection = as_declared(detection, header.shapes(), declared.value)
    if detection.model_type.value != declared.value:
        raise InvalidInput(
            f"declared type is {declared.value!r} but the file is a {detection.model_type.value!r} model "
            f"({detection.architecture})",
            field="type",
            details={"reason": "wrong_type", "detected": detection.model_type.value},
        )
    return detection.model_type, detection.architecture, detection.layout


class ModelIntake:
    """Turns received bytes into an inspected, storable model; never unpickles anything in this process."""

    def __init__(self, *, objects, scratch_dir: Path, convert_timeout_s: float = 900.0) -> None:
        self._objects = objects
        self._scratch = Path(scratch_dir)
        self._convert_timeout_s = convert_timeout_s

    def scratch_file(self, suffix: str = "") -> Path:
        """A new empty temp file in the scratch dir (the caller deletes it)."""
        self._scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._scratch, suffix=suffix)
        os.close(fd)
        return Path(name)

    def inspect_object(self, key: str, *, declared: ModelType, sha256: str | None = None) -> Intake:
        """Inspect an object in the store: safetensors in one streaming pass (only the header when its `sha256`
        is already known, e.g. hashed while an upload's parts arrived); pickles via a converted copy."""
        size = self._objects.head(key).size
        head = b"".join(self._objects.open_range(key, start=0, end=min(size, 16) - 1)) if size else b""
        kind = sniff_format(head)
        if kind in ("pickle", "zip"):
            local = self.scratch_file(".pickle")
            try:
                with local.open("wb") as handle:
                    for chunk in self._objects.open_range(key):
                        handle.write(chunk)
                return self.inspect_file(local, declared=declared)
            finally:
                local.unlink(missing_ok=True)
        self._check_safetensors_head(head, size=size)
        reader = _HashingReader(self._objects.open_range(key, chunk_size=CHUNK_BYTES))
        try:
            header = read_safetensors_header(reader, file_size=size)
        except ModelFileError as exc:
            raise _refusal(exc) from None
        model_type, architecture, layout = _detect(header, declared=declared)
        if sha256 is None:
            reader.drain()
            digest, received = reader.digest.hexdigest(), reader.count
        else:
            digest, received = sha256, size
        inspection = ModelInspection(
            sha256=digest, short_hash=digest[:10], size=size, format="safetensors", model_type=model_type,
            architecture=architecture, layout=layout, precision=describe_precision(header),
            tensor_count=len(header.tensors), metadata=header.metadata,
        )
        return Intake(inspection=inspection, received_sha256=digest, received_size=received, converted=False,
                      object_key=key)

    def inspect_file(self, path: Path, *, declared: ModelType) -> Intake:
        """Inspect a local file; a pickle is converted in an isolated subprocess first (or refused)."""
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(16)
        kind = sniff_format(head)
        if kind not in ("pickle", "zip"):
            self._check_safetensors_head(head, size=size)
            return self._inspected(path, declared=declared, received_sha256=None, size=size, converted=False)
        received = _sha256_file(path)
        converted = self.scratch_file(".safetensors")
        try:
            convert_pickle_to_safetensors(path, converted, timeout_s=self._convert_timeout_s)
            return self._inspected(converted, declared=declared, received_sha256=received, size=size, converted=True)
        except ModelFileError as exc:
            converted.unlink(missing_ok=True)
            raise InvalidInput(
                f"pickle file refused: {exc.message}", field="file", details={"reason": exc.code}
            ) from None
        except BaseException:
            converted.unlink(missing_ok=True)
            raise

    def _inspected(
        self, path: Path, *, declared: ModelType, received_sha256: str | None, size: int, converted: bool
    ) -> Intake:
        try:
            inspection = inspect_model_file(path, declared_type=declared.value)
        except ModelFileError as exc:
            field = "type" if exc.code in ("wrong_type", "unknown_type") else "file"
            raise InvalidInput(exc.message, field=field, details={"reason": exc.code}) from None
        return Intake(
            inspection=inspection, received_sha256=received_sha256 or inspection.sha256, received_size=size,
            converted=converted, local_path=path,
        )

    @staticmethod
    def _check_safetensors_head(head: bytes, *, size: int) -> None:
        if size == 0:
            raise InvalidInput("file is empty", field="file", details={"reason": "not_a_model"})
        if sniff_format(head) != "safetensors":
            raise InvalidInput(
                "file is not a model: expected safetensors (an 8-byte length and a JSON header) or a pickle "
                "checkpoint (.ckpt, .pt, .pth, .bin)",
                field="file",
                details={"reason": "not_a_model"},
            )

    def place(self, intake: Intake) -> bool:
        """Store the content under `models/{sha256}` unless it is there already; True when this call wrote it."""
        key = blob_key(intake.inspection.sha256)
        if self._objects.exists(key):
            return False
        if intake.local_path is not None:
            with intake.local_path.open("rb") as handle:
                self._objects.put(key, handle, content_type="application/octet-stream")
        elif intake.object_key is not None:
            self._objects.copy(intake.object_key, key)
        else:
            raise ValueError("intake has neither a local file nor an object to store")
        return True

    def discard(self, intake: Intake | None) -> None:
        """Remove a converted temp file of an intake (imports delete their own download)."""
        if intake is not None and intake.converted and intake.local_path is not None:
            with contextlib.suppress(OSError):
                intake.local_path.unlink()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
