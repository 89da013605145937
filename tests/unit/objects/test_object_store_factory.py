"""open_object_store: one URL picks the backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdfleet.objects.base import ObjectStore
from sdfleet.objects.factory import open_object_store
from sdfleet.objects.local import LocalObjectStore
from sdfleet.objects.memory import MemoryObjectStore
from sdfleet.objects.s3 import S3ObjectStore

OPTIONS = {"s3_endpoint_url": None, "secret_key": b"factory-secret-0123", "public_base_url": "http://sd.local:8000"}


def test_a_plain_path_opens_a_local_store(tmp_path: Path) -> None:
    store = open_object_store(str(tmp_path / "objects"), **OPTIONS)

    assert isinstance(store, LocalObjectStore) and isinstance(store, ObjectStore)
    assert store.root == tmp_path / "objects"
    store.put("models/a", b"a")
    assert (tmp_path / "objects" / "models" / "a").read_bytes() == b"a"
    assert store.download_url("models/a", expires_in=5).startswith("http://sd.local:8000/api/v1/objects/models/a?")


def test_a_file_url_opens_a_local_store(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}/my%20objects", **OPTIONS)

    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "my objects"


def test_memory_url_opens_the_fake() -> None:
    assert isinstance(open_object_store("memory://", **OPTIONS), MemoryObjectStore)


def test_s3_url_splits_bucket_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    store = open_object_store(
        "s3://media-bucket/sdfleet/prod/", **{**OPTIONS, "s3_endpoint_url": "http://127.0.0.1:9"}
    )

    assert isinstance(store, S3ObjectStore)
    assert store.bucket == "media-bucket"
    url = store.download_url("models/a", expires_in=60)
    assert url.startswith("http://127.0.0.1:9/media-bucket/sdfleet/prod/models/a?")  # path-style, prefixed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "must not be empty"),
        ("s3://", "must name a bucket"),
        ("gs://bucket/x", "got gs://"),
        ("file://otherhost/x", "must be local"),
        ("s3://bucket/../x", "'..'"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_object_store(url, **OPTIONS)
