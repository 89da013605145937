"""S3ObjectStore: any S3-compatible bucket through boto3, optionally under a key prefix."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sdfleet.objects.base import (
    DEFAULT_CHUNK_SIZE,
    MAX_PART_NUMBER,
    MIN_PART_SIZE,
    InvalidMultipart,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreUnavailable,
    PartInfo,
    UploadNotFound,
    read_exactly,
    validate_key,
    validate_part_number,
    validate_prefix,
    validate_range,
)
from sdfleet.objects.multipart import check_part_order
from sdfleet.objects.signing import MAX_EXPIRES_IN, content_disposition

#: Largest object S3 copies in one CopyObject call.
MAX_SINGLE_COPY_SIZE = 5 * 1024**3
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_BAD_COMPLETION = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"}


def create_s3_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> BaseClient:
    """Return a boto3 S3 client for S3-compatible stores: path-style, bounded retries and timeouts.

    Credentials not given come from boto3's usual chain (AWS_* environment variables, profiles, roles).
    """
    session = boto3.session.Session(
        aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region_name
    )
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # The newer default (CRC32 trailers on every upload) breaks presigned part uploads and several
        # S3-compatible servers; send checksums only where S3 requires one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client(
        "s3", endpoint_url=endpoint_url, region_name=session.region_name or "us-east-1", config=config
    )


class S3ObjectStore:
    """Objects in `bucket` under `prefix`; multipart uploads use S3's own multipart API."""

    def __init__(
        self,
        *,
        client: BaseClient,
        bucket: str,
        prefix: str = "",
        part_size: int = 8 * 1024 * 1024,
        list_page_size: int = 1000,
        multipart_copy_threshold: int = MAX_SINGLE_COPY_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if part_size < MIN_PART_SIZE:
            raise ValueError(
                f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum), got {part_size}"
            )
        prefix = prefix.strip("/")
        validate_prefix(prefix)
        self._client = client
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._part_size = part_size
        self._page_size = list_page_size
        self._copy_threshold = min(multipart_copy_threshold, MAX_SINGLE_COPY_SIZE)

    @property
    def bucket(self) -> str:
        """The bucket holding the objects."""
        return self._bucket

    # 1. Objects

    def put(self, key: str, data: BinaryIO | bytes, *, content_type: str | None = None) -> ObjectInfo:
        """Upload in one request when small; else stream it as a multipart upload, one part in memory."""
        validate_key(key)
        stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        first = read_exactly(stream, self._part_size)
        if len(first) < self._part_size:
            extra = {"ContentType": content_type} if content_type else {}
            with self._errors(key):
                self._client.put_object(Bucket=self._bucket, Key=self._full(key), Body=first, **extra)
            return self.head(key)
        upload_id = self.create_multipart(key, content_type=content_type)
        try:
            parts: list[PartInfo] = []
            chunk = first
            del first
            while chunk:
                if len(parts) == MAX_PART_NUMBER:
                    raise ValueError(
                        f"data for {key!r} needs more than {MAX_PART_NUMBER} parts of {self._part_size} bytes"
                    )
                parts.append(self.upload_part(key, upload_id, len(parts) + 1, chunk))
                chunk = b""  # drop this part before reading the next: one part in memory, not two
                chunk = read_exactly(stream, self._part_size)
            return self.complete_multipart(key, upload_id, parts)
        except BaseException:
            with contextlib.suppress(Exception):
                self.abort_multipart(key, upload_id)
            raise

    def open_range(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Send the GET now (raising ObjectNotFound) and stream its body in chunks."""
        validate_key(key)
        validate_range(start=start, end=end, chunk_size=chunk_size)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": self._full(key)}
        if start != 0 or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end}"
        with self._errors(key):
            response = self._client.get_object(**params)
        return self._stream_body(response["Body"], key=key, chunk_size=chunk_size)

    def read_bytes(self, key: str) -> bytes:
        """Return a whole (small) object."""
        return b"".join(self.open_range(key))

    def head(self, key: str) -> ObjectInfo:
        """Return the object's metadata from a HEAD request."""
        validate_key(key)
        with self._errors(key):
            response = self._client.head_object(Bucket=self._bucket, Key=self._full(key))
        return ObjectInfo(
            key=key,
            size=response["ContentLength"],
            etag=_etag(response.get("ETag")),
            content_type=response.get("ContentType"),
            modified=response["LastModified"],
        )

    def exists(self, key: str) -> bool:
        """Tell whether the key holds an object."""
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Delete the object (S3 answers success for a missing key)."""
        validate_key(key)
        with self._errors(key):
            self._client.delete_object(Bucket=self._bucket, Key=self._full(key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`, 1000 keys per request."""
        deleted = 0
        batch: list[dict[str, str]] = []
        for info in self.list(prefix):
            batch.append({"Key": self._full(info.key)})
            if len(batch) == 1000:
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield objects under `prefix` in key order, one page of ListObjectsV2 at a time."""
        validate_prefix(prefix)
        return self._list_pages(prefix)

    def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy server-side: one CopyObject, or UploadPartCopy ranges past the single-copy limit."""
        validate_key(dst)
        source = self.head(src)
        copy_source = {"Bucket": self._bucket, "Key": self._full(src)}
        if source.size <= self._copy_threshold:
            with self._errors(src):
                self._client.copy_object(Bucket=self._bucket, Key=self._full(dst), CopySource=copy_source)
            return self.head(dst)
        part_size = max(self._part_size, math.ceil(source.size / MAX_PART_NUMBER))
        upload_id = self.create_multipart(dst, content_type=source.content_type)
        try:
            parts = []
            for number, first in enumerate(range(0, source.size, part_size), start=1):
                last = min(first + part_size, source.size) - 1
                with self._errors(dst, upload_id=upload_id):
                    response = self._client.upload_part_copy(
                        Bucket=self._bucket, Key=self._full(dst), UploadId=upload_id, PartNumber=number,
                        CopySource=copy_source, CopySourceRange=f"bytes={first}-{last}",
                    )
                etag = _etag(response["CopyPartResult"]["ETag"]) or ""
                parts.append(PartInfo(part_number=number, size=last - first + 1, etag=etag))
            return self.complete_multipart(dst, upload_id, parts)
        except BaseException:
            with contextlib.suppress(Exception):
                self.abort_multipart(dst, upload_id)
            raise

    # 2. Multipart uploads

    def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        """Start an S3 multipart upload."""
        validate_key(key)
        extra = {"ContentType": content_type} if content_type else {}
        with self._errors(key):
            response = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._full(key), **extra)
        return response["UploadId"]

    def upload_part(self, key: str, upload_id: str, part_number: int, data: BinaryIO | bytes) -> PartInfo:
        """Upload one part; a seekable file streams from its position, anything else is read first."""
        validate_key(key)
        validate_part_number(part_number)
        body, size = _part_body(data)
        with self._errors(key, upload_id=upload_id):
            response = self._client.upload_part(
                Bucket=self._bucket, Key=self._full(key), UploadId=upload_id, PartNumber=part_number,
                Body=body, ContentLength=size,
            )
        return PartInfo(part_number=part_number, size=size, etag=_etag(response["ETag"]) or "")

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """Return the parts S3 holds for the upload."""
        validate_key(key)
        paginator = self._client.get_paginator("list_parts")
        parts = []
        with self._errors(key, upload_id=upload_id):
            for page in paginator.paginate(Bucket=self._bucket, Key=self._full(key), UploadId=upload_id):
                parts.extend(
                    PartInfo(part_number=p["PartNumber"], size=p["Size"], etag=_etag(p["ETag"]) or "")
                    for p in page.get("Parts", [])
                )
        return sorted(parts, key=lambda p: p.part_number)

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> ObjectInfo:
        """Ask S3 to assemble the listed parts."""
        validate_key(key)
        check_part_order(parts)  # some S3-compatible servers (moto) accept any order
        listed = [{"PartNumber": p.part_number, "ETag": f'"{p.etag.strip(chr(34))}"'} for p in parts]
        with self._errors(key, upload_id=upload_id):
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=self._full(key), UploadId=upload_id,
                MultipartUpload={"Parts": listed},
            )
        return self.head(key)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort the upload so S3 frees its parts; an unknown upload is not an error."""
        validate_key(key)
        with contextlib.suppress(UploadNotFound), self._errors(key, upload_id=upload_id):
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._full(key), UploadId=upload_id)

    def presign_part_url(self, key: str, upload_id: str, part_number: int, *, expires_in: int) -> str | None:
        """Return a presigned UploadPart URL the client PUTs the part's bytes to."""
        validate_key(key)
        validate_part_number(part_number)
        _check_expires_in(expires_in)
        params = {
            "Bucket": self._bucket, "Key": self._full(key), "UploadId": upload_id, "PartNumber": part_number
        }
        return self._client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_in)

    # 3. Download URLs and health

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """Return a presigned GET, with an attachment Content-Disposition when `filename` is given."""
        validate_key(key)
        _check_expires_in(expires_in)
        params = {"Bucket": self._bucket, "Key": self._full(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def verify_download(
        self, key: str, *, expires: int, signature: str, filename: str | None = None
    ) -> bool:
        """S3 checks its own presigned URLs: the API never serves S3 objects by signature."""
        return False

    def purge_incomplete(self, *, older_than: timedelta) -> int:
        """Abort this prefix's multipart uploads initiated before `older_than` ago (S3 keeps their parts)."""
        cutoff = datetime.now(UTC) - older_than
        paginator = self._client.get_paginator("list_multipart_uploads")
        stale = []
        with self._errors(self._prefix):
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                stale.extend(u for u in page.get("Uploads", []) if u["Initiated"] < cutoff)
            for upload in stale:
                with contextlib.suppress(ClientError):
                    self._client.abort_multipart_upload(
                        Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        return len(stale)

    def check(self) -> None:
        """HEAD the bucket; raise ObjectStoreUnavailable with the reason in one line."""
        endpoint = self._client.meta.endpoint_url
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except ClientError as error:
            code = _code(error)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise ObjectStoreUnavailable(
                    f"S3 bucket {self._bucket!r} does not exist at {endpoint}"
                ) from error
            if code in ("403", "AccessDenied"):
                raise ObjectStoreUnavailable(
                    f"S3 bucket {self._bucket!r} at {endpoint} refuses these credentials (403)"
                ) from error
            raise ObjectStoreUnavailable(f"S3 bucket {self._bucket!r} at {endpoint}: {error}") from error
        except BotoCoreError as error:
            raise ObjectStoreUnavailable(f"cannot reach S3 endpoint {endpoint}: {error}") from error

    # Internals

    def _full(self, key: str) -> str:
        return self._prefix + key

    def _list_pages(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket, Prefix=self._full(prefix), PaginationConfig={"PageSize": self._page_size}
        )
        with self._errors(prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"][len(self._prefix) :],
                        size=item["Size"],
                        etag=_etag(item.get("ETag")),
                        content_type=None,  # ListObjectsV2 does not report it; head() does
                        modified=item["LastModified"],
                    )

    def _delete_batch(self, batch: list[dict[str, str]]) -> int:
        with self._errors(batch[0]["Key"]):
            response = self._client.delete_objects(
                Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
            )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise ObjectStoreUnavailable(
                f"S3 refused to delete {len(errors)} objects, "
                f"first {first.get('Key')!r}: {first.get('Message')}"
            )
        return len(batch)

    def _stream_body(self, body: Any, *, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors(key):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    @contextlib.contextmanager
    def _errors(self, key: str, *, upload_id: str | None = None) -> Iterator[None]:
        """Translate botocore errors into the store's errors, naming the key."""
        try:
            yield
        except ClientError as error:
            code = _code(error)
            if code == "NoSuchUpload":
                raise UploadNotFound(f"no multipart upload {upload_id!r} for key {key!r}") from error
            if code in _NOT_FOUND:
                raise ObjectNotFound(f"no object at key {key!r}") from error
            if code == "InvalidRange":
                raise InvalidRange(f"range is beyond the end of {key!r}") from error
            if code in _BAD_COMPLETION:
                raise InvalidMultipart(f"S3 refused the parts of {key!r}: {_message(error)}") from error
            if code == "NoSuchBucket":
                raise ObjectStoreUnavailable(f"S3 bucket {self._bucket!r} does not exist") from error
            if code in ("403", "AccessDenied"):
                raise ObjectStoreUnavailable(
                    f"S3 bucket {self._bucket!r} refuses these credentials for {key!r} (403)"
                ) from error
            raise
        except BotoCoreError as error:
            raise ObjectStoreUnavailable(f"S3 request for {key!r} failed: {error}") from error


def _part_body(data: BinaryIO | bytes) -> tuple[Any, int]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), len(data)
    if getattr(data, "seekable", lambda: False)():
        position = data.tell()
        size = data.seek(0, io.SEEK_END) - position
        data.seek(position)
        return data, size
    body = data.read()
    return body, len(body)


def _check_expires_in(expires_in: int) -> None:
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise ValueError(f"expires_in must be between 1 and {MAX_EXPIRES_IN} seconds, got {expires_in}")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", _code(error)))


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None
