"""LocalObjectStore: objects as files under one directory, written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sdfleet.objects.base import (
    DEFAULT_CHUNK_SIZE,
    MIN_PART_SIZE,
    RESERVED_SEGMENT,
    InvalidObjectKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreUnavailable,
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

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class LocalObjectStore(ServerSignedUrls):
    """Stores each key as a file under `root`; metadata, temp files and parts live under `root/.sdfleet/`."""

    def __init__(self, *, root: Path | str, signer: UrlSigner, min_part_size: int = MIN_PART_SIZE) -> None:
        self._root = Path(root).absolute()
        self._staging = self._root / RESERVED_SEGMENT
        self._signer = signer
        self._min_part_size = min_part_size

    @property
    def root(self) -> Path:
        """The directory holding the objects."""
        return self._root

    # 1. Objects

    def put(self, key: str, data: BinaryIO | bytes, *, content_type: str | None = None) -> ObjectInfo:
        """Stream `data` to a temp file, fsync it, then rename it over the key."""
        target = self._path(key)
        tmp, etag = self._write_temp(iter_chunks(data))
        return self._commit(tmp, target=target, key=key, etag=etag, content_type=content_type)

    def open_range(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Open the file now (raising ObjectNotFound) and stream bytes `start..end` (inclusive)."""
        validate_range(start=start, end=end, chunk_size=chunk_size)
        path = self._path(key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object at key {key!r}") from None
        try:
            first, stop = resolve_range(key=key, size=os.fstat(handle.fileno()).st_size, start=start, end=end)
        except BaseException:
            handle.close()
            raise
        return _read_span(handle, first=first, stop=stop, chunk_size=chunk_size)

    def read_bytes(self, key: str) -> bytes:
        """Return a whole (small) object."""
        return b"".join(self.open_range(key))

    def head(self, key: str) -> ObjectInfo:
        """Return the object's size, mtime and stored metadata."""
        return self._info(key, self._path(key))

    def exists(self, key: str) -> bool:
        """Tell whether the key holds an object."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file, its metadata and any folders left empty."""
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self._meta_path(key).unlink()
        self._prune_empty_dirs(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`."""
        keys = [info.key for info in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield objects under `prefix` sorted by key, walking only the folder the prefix names."""
        validate_prefix(prefix)
        folder, _, _ = prefix.rpartition("/")
        start = self._root / folder if folder else self._root
        if not start.is_dir():
            return iter(())
        return self._walk(start, key_prefix=f"{folder}/" if folder else "", prefix=prefix)

    def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy through a temp file, so `dst` is never seen half-written."""
        source = self._path(src)
        target = self._path(dst)
        info = self._info(src, source)
        tmp = self._temp_path()
        try:
            # Objects are never modified in place (every write renames a new file over the key), so a hard
            # link is an independent copy at no I/O cost; other filesystems fall back to copying bytes.
            os.link(source, tmp)
        except FileNotFoundError:
            raise ObjectNotFound(f"no object at key {src!r}") from None
        except OSError:
            try:
                shutil.copyfile(source, tmp)
            except FileNotFoundError:
                tmp.unlink(missing_ok=True)
                raise ObjectNotFound(f"no object at key {src!r}") from None
            _fsync_file(tmp)
        return self._commit(tmp, target=target, key=dst, etag=info.etag, content_type=info.content_type)

    # 2. Multipart uploads

    def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        """Create a staging folder for the parts."""
        validate_key(key)
        upload_id = uuid.uuid4().hex
        folder = self._upload_dir(upload_id)
        folder.mkdir(parents=True)
        _write_json(folder / "upload.json", {"key": key, "content_type": content_type})
        return upload_id

    def upload_part(self, key: str, upload_id: str, part_number: int, data: BinaryIO | bytes) -> PartInfo:
        """Write the part atomically; the same part number again replaces it."""
        validate_part_number(part_number)
        folder = self._open_upload(key, upload_id)
        # A part's etag only has to tell this stored version from any other (completion compares it): a fresh
        # random tag per write costs nothing, where hashing a 64 MiB part would. Callers that need the
        # content's hash (resumable uploads keep a sha256 per part) compute it themselves.
        tmp, etag = self._write_temp(iter_chunks(data), content_etag=False)
        size = tmp.stat().st_size
        part = PartInfo(part_number=part_number, size=size, etag=etag)
        try:
            _write_json(folder / f"{part_number:05d}.json", {"etag": etag, "size": size})
            os.replace(tmp, folder / f"{part_number:05d}.part")
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            raise UploadNotFound(f"no multipart upload {upload_id!r} for key {key!r}") from None
        return part

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """Return the parts uploaded so far, by part number."""
        folder = self._open_upload(key, upload_id)
        parts = []
        for data_path in sorted(folder.glob("*.part")):
            part = _read_part(data_path)
            if part is not None:
                parts.append(part)
        return parts

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> ObjectInfo:
        """Check the parts like S3 does, then stream them into the object."""
        folder = self._open_upload(key, upload_id)
        content_type = json.loads((folder / "upload.json").read_text())["content_type"]
        stored = {p.part_number: p for p in self.list_parts(key, upload_id)}
        check_completion(parts, stored=stored, min_part_size=self._min_part_size)
        target = self._path(key)
        tmp = self._concatenate(folder, parts)
        etag = multipart_etag(parts)
        info = self._commit(tmp, target=target, key=key, etag=etag, content_type=content_type)
        shutil.rmtree(folder, ignore_errors=True)
        return info

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Remove the staging folder; an unknown upload is not an error."""
        try:
            folder = self._open_upload(key, upload_id)
        except UploadNotFound:
            return
        shutil.rmtree(folder, ignore_errors=True)

    # 3. Health

    def purge_incomplete(self, *, older_than: timedelta) -> int:
        """Remove multipart folders and temp files (left by killed processes) older than `older_than`."""
        cutoff = time.time() - older_than.total_seconds()
        purged = 0
        for folder in (self._staging / "multipart", self._staging / "tmp"):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                try:
                    if entry.stat().st_mtime >= cutoff:
                        continue
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                except FileNotFoundError:
                    continue
                purged += 1
        return purged

    def check(self) -> None:
        """Create the root if needed and prove it is writable with a probe file."""
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            if not self._root.is_dir():
                raise ObjectStoreUnavailable(f"object store root {self._root} is not a directory")
            probe = self._temp_path()
            probe.write_bytes(b"probe")
            probe.unlink()
        except OSError as error:
            raise ObjectStoreUnavailable(
                f"object store directory {self._root} is not writable: {error.strerror or error}"
            ) from error

    # Internals

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self._root / key
        # Keys cannot hold '..', but a symlink placed inside the root could still lead out of it.
        real_root = os.path.realpath(self._root)
        if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
            raise InvalidObjectKey(f"object key {key!r} resolves outside the store root")
        return path

    def _meta_path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self._staging / "meta" / digest[:2] / f"{digest}.json"

    def _upload_dir(self, upload_id: str) -> Path:
        return self._staging / "multipart" / upload_id

    def _open_upload(self, key: str, upload_id: str) -> Path:
        validate_key(key)
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise UploadNotFound(f"no multipart upload {upload_id!r} for key {key!r}")
        folder = self._upload_dir(upload_id)
        try:
            owner = json.loads((folder / "upload.json").read_text())["key"]
        except FileNotFoundError:
            owner = None
        if owner != key:
            raise UploadNotFound(f"no multipart upload {upload_id!r} for key {key!r}")
        return folder

    def _temp_path(self) -> Path:
        folder = self._staging / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{uuid.uuid4().hex}.tmp"

    def _write_temp(self, chunks: Iterator[bytes], *, content_etag: bool = True) -> tuple[Path, str]:
        """Write chunks to a new temp file in the root's filesystem; return it and its etag (from the content,
        or a random version tag when `content_etag` is False)."""
        tmp = self._temp_path()
        # A content etag only has to change with the content (S3's is an md5): a truncated sha256 is as good
        # and, with SHA extensions, more than twice as fast as md5.
        digest = hashlib.sha256() if content_etag else None
        try:
            with tmp.open("wb") as handle:
                for chunk in chunks:
                    if digest is not None:
                        digest.update(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest.hexdigest()[:32] if digest is not None else uuid.uuid4().hex

    def _concatenate(self, folder: Path, parts: list[PartInfo]) -> Path:
        """Join the parts into a new temp file with in-kernel copies (no bytes through Python)."""
        tmp = self._temp_path()
        try:
            with tmp.open("wb") as out:
                for part in parts:
                    with (folder / f"{part.part_number:05d}.part").open("rb") as src:
                        _copy_file(src, out)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _commit(
        self, tmp: Path, *, target: Path, key: str, etag: str | None, content_type: str | None
    ) -> ObjectInfo:
        """Record metadata for the temp file, then rename it over the key."""
        stat = tmp.stat()
        meta = {
            "etag": etag, "content_type": content_type, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns
        }
        try:
            meta_path = self._meta_path(key)
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            _write_json(meta_path, meta)
            self._rename_into_place(tmp, target=target, key=key)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            etag=etag,
            content_type=content_type,
            modified=datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=UTC),
        )

    def _rename_into_place(self, tmp: Path, *, target: Path, key: str) -> None:
        # A concurrent delete may prune the freshly made folder between mkdir and rename: retry a few times.
        for attempt in range(5):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_dir():
                    raise InvalidObjectKey(f"object key {key!r} is a folder of other objects on this store")
                os.replace(tmp, target)
                _fsync_dir(target.parent)
                return
            except (FileExistsError, NotADirectoryError) as error:
                raise InvalidObjectKey(
                    f"object key {key!r} runs through an existing object on this store"
                ) from error
            except FileNotFoundError:
                if attempt == 4:
                    raise

    def _info(self, key: str, path: Path) -> ObjectInfo:
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object at key {key!r}") from None
        if not path.is_file():
            raise ObjectNotFound(f"no object at key {key!r}")
        meta = _read_json(self._meta_path(key))
        # Metadata from a crash between the two renames (or a file copied in by hand) is ignored.
        if meta is None or meta.get("size") != stat.st_size or meta.get("mtime_ns") != stat.st_mtime_ns:
            meta = {}
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            etag=meta.get("etag"),
            content_type=meta.get("content_type"),
            modified=datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=UTC),
        )

    def _walk(self, folder: Path, *, key_prefix: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting a folder as 'name/' makes the walk yield keys in plain string order ('a-b' < 'a/c' < 'a0').
        entries.sort(key=lambda e: e.name + "/" if e.is_dir(follow_symlinks=False) else e.name)
        for entry in entries:
            key = key_prefix + entry.name
            if key == RESERVED_SEGMENT:
                continue
            if entry.is_dir(follow_symlinks=False):
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(Path(entry.path), key_prefix=key + "/", prefix=prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                try:
                    yield self._info(key, Path(entry.path))
                except ObjectNotFound:
                    continue  # deleted while listing

    def _prune_empty_dirs(self, folder: Path) -> None:
        while folder != self._root and self._root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def _read_span(handle: BinaryIO, *, first: int, stop: int, chunk_size: int) -> Iterator[bytes]:
    with handle:
        handle.seek(first)
        remaining = stop - first
        while remaining > 0:
            chunk = handle.read(min(chunk_size, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _copy_file(src, out) -> None:
    """Append all of `src` to `out`: copy_file_range where the kernel has it, else a buffered copy."""
    size = os.fstat(src.fileno()).st_size
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        out.flush()
        offset = 0
        try:
            while offset < size:
                sent = copy_range(src.fileno(), out.fileno(), size - offset, offset)
                if sent == 0:
                    break
                offset += sent
            out.seek(0, os.SEEK_END)
            if offset == size:
                return
        except OSError:
            pass
        src.seek(offset)
    shutil.copyfileobj(src, out, 1 << 20)


def _read_part(data_path: Path) -> PartInfo | None:
    meta = _read_json(data_path.with_suffix(".json"))
    try:
        size = data_path.stat().st_size
    except FileNotFoundError:
        return None
    if meta is None or meta.get("size") != size:
        return None  # being replaced right now
    return PartInfo(part_number=int(data_path.stem), size=size, etag=meta["etag"])


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
