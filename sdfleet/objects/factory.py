"""Opening the configured ObjectStore from one URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from sdfleet.objects.base import ObjectStore
from sdfleet.objects.local import LocalObjectStore
from sdfleet.objects.memory import MemoryObjectStore
from sdfleet.objects.s3 import S3ObjectStore, create_s3_client
from sdfleet.objects.signing import UrlSigner


def open_object_store(
    url: str, *, s3_endpoint_url: str | None, secret_key: bytes, public_base_url: str
) -> ObjectStore:
    """Open `s3://bucket/prefix`, `memory://`, `file:///path` or a plain filesystem path.

    S3 credentials and region come from boto3's usual chain (AWS_* environment variables, profiles, roles).
    """
    if not url:
        raise ValueError("object store URL must not be empty; expected a directory or s3://bucket/prefix")
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme == "s3":
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"object store URL must name a bucket, like s3://bucket/prefix, got {url!r}")
        client = create_s3_client(endpoint_url=s3_endpoint_url)
        return S3ObjectStore(client=client, bucket=parts.netloc, prefix=unquote(parts.path).strip("/"))
    if scheme == "memory":
        return MemoryObjectStore(secret_key=secret_key, public_base_url=public_base_url)
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file:// object store URL must be local (file:///path), got {url!r}")
        root = Path(unquote(parts.path))
    elif scheme:
        raise ValueError(
            f"object store URL scheme must be s3://, file:// or a path, got {scheme}:// in {url!r}"
        )
    else:
        root = Path(url).expanduser()
    signer = UrlSigner(secret_key=secret_key, public_base_url=public_base_url)
    return LocalObjectStore(root=root, signer=signer)
