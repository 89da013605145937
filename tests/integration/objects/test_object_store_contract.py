"""The ObjectStore contract, run on MemoryObjectStore, LocalObjectStore and S3ObjectStore (moto)."""

from __future__ import annotations

import io
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from sdfleet.objects.base import (
    MIN_PART_SIZE,
    InvalidMultipart,
    InvalidObjectKey,
    InvalidRange,
    ObjectNotFound,
    ObjectStore,
    PartInfo,
    UploadNotFound,
)
from sdfleet.objects.s3 import S3ObjectStore


def payload(size: int, *, seed: int = 0) -> bytes:
    """Deterministic random bytes."""
    return random.Random(seed).randbytes(size)


# 1. Objects


def test_put_bytes_then_head_and_read_return_the_same_object(store: ObjectStore) -> None:
    data = payload(1000)
    before = datetime.now(UTC) - timedelta(seconds=5)

    info = store.put("outputs/job-1/0.png", data, content_type="image/png")

    assert info.key == "outputs/job-1/0.png"
    assert info.size == 1000
    assert info.content_type == "image/png"
    assert info.etag
    assert info.modified.tzinfo is not None and info.modified >= before
    head = store.head("outputs/job-1/0.png")
    assert (head.key, head.size, head.etag, head.content_type) == (info.key, 1000, info.etag, "image/png")
    assert store.read_bytes("outputs/job-1/0.png") == data
    assert store.exists("outputs/job-1/0.png")


def test_put_streams_from_a_file_object_with_short_reads(store: ObjectStore) -> None:
    data = payload(3 * 1024 * 1024 + 17)

    class Trickle(io.RawIOBase):
        """A non-seekable stream that returns at most 100 kB per read, like a socket."""

        def __init__(self) -> None:
            self._source = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self._source.read(min(size if size >= 0 else 100_000, 100_000))

    info = store.put("models/abc", Trickle())

    assert info.size == len(data)
    assert store.read_bytes("models/abc") == data


def test_put_replaces_an_existing_object(store: ObjectStore) -> None:
    store.put("inputs/u1/x.png", b"first version", content_type="image/png")
    store.put("inputs/u1/x.png", b"second", content_type="image/webp")

    assert store.read_bytes("inputs/u1/x.png") == b"second"
    assert store.head("inputs/u1/x.png").size == 6
    assert store.head("inputs/u1/x.png").content_type == "image/webp"


def test_empty_object_round_trips(store: ObjectStore) -> None:
    store.put("empty", b"")

    assert store.head("empty").size == 0
    assert store.read_bytes("empty") == b""
    assert list(store.open_range("empty")) in ([], [b""])


def test_missing_key_raises_object_not_found_and_delete_ignores_it(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.head("models/missing")
    with pytest.raises(ObjectNotFound):
        store.read_bytes("models/missing")
    with pytest.raises(ObjectNotFound):
        store.open_range("models/missing")  # raised at the call, before any iteration
    assert not store.exists("models/missing")
    store.delete("models/missing")


def test_delete_removes_only_that_object(store: ObjectStore) -> None:
    store.put("outputs/j/0.png", b"0")
    store.put("outputs/j/1.png", b"1")

    store.delete("outputs/j/0.png")

    assert not store.exists("outputs/j/0.png")
    assert [i.key for i in store.list("outputs/")] == ["outputs/j/1.png"]


# 2. Ranged reads


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, slice(0, 5000)),
        (0, 0, slice(0, 1)),
        (10, 19, slice(10, 20)),
        (4000, None, slice(4000, 5000)),
        (4999, 4999, slice(4999, 5000)),
        (4990, 9999, slice(4990, 5000)),  # an end past the object is clamped, like HTTP
    ],
)
def test_open_range_returns_exact_bytes(
    store: ObjectStore, start: int, end: int | None, expected: slice
) -> None:
    data = payload(5000, seed=3)
    store.put("datasets/d/blob", data)

    got = b"".join(store.open_range("datasets/d/blob", start=start, end=end))

    assert got == data[expected]


def test_open_range_yields_chunks_no_larger_than_chunk_size(store: ObjectStore) -> None:
    data = payload(10_000, seed=4)
    store.put("blob", data)

    chunks = list(store.open_range("blob", start=100, chunk_size=1024))

    assert b"".join(chunks) == data[100:]
    assert all(0 < len(chunk) <= 1024 for chunk in chunks)


def test_open_range_refuses_ranges_that_do_not_fit(store: ObjectStore) -> None:
    store.put("blob", b"0123456789")

    with pytest.raises(InvalidRange):
        store.open_range("blob", start=10)
    with pytest.raises(InvalidRange):
        store.open_range("blob", start=5, end=4)
    with pytest.raises(InvalidRange):
        store.open_range("blob", start=-1)


# 3. Listing, prefixes, copies


def test_list_is_sorted_by_key_and_matches_partial_prefixes(store: ObjectStore) -> None:
    for key in ["outputs/job10/0.png", "outputs/job1/1.png", "outputs/job1/0.png", "outputs/job2/0.png",
                "outputs/job1-b/0.png", "inputs/u/1.png"]:
        store.put(key, key.encode())

    keys = [info.key for info in store.list("outputs/job1")]

    assert keys == ["outputs/job1-b/0.png", "outputs/job1/0.png", "outputs/job1/1.png", "outputs/job10/0.png"]
    assert keys == sorted(keys)
    assert [i.key for i in store.list("outputs/job1/")] == ["outputs/job1/0.png", "outputs/job1/1.png"]
    assert [i.key for i in store.list("nothing/")] == []
    everything = list(store.list())
    assert [i.key for i in everything] == sorted(i.key for i in everything)
    assert {i.key: i.size for i in everything}["inputs/u/1.png"] == len(b"inputs/u/1.png")


def test_list_orders_keys_as_plain_strings_across_folders(store: ObjectStore) -> None:
    for key in ["a0", "a/c", "a-b", "a/b/z", "b"]:
        store.put(key, b"x")

    assert [i.key for i in store.list()] == ["a-b", "a/b/z", "a/c", "a0", "b"]


def test_delete_prefix_counts_and_keeps_the_rest(store: ObjectStore) -> None:
    for n in range(5):
        store.put(f"uploads/u1/part-{n}", b"x")
    store.put("uploads/u10/part-0", b"x")
    store.put("models/keep", b"x")

    assert store.delete_prefix("uploads/u1/") == 5

    assert [i.key for i in store.list()] == ["models/keep", "uploads/u10/part-0"]
    assert store.delete_prefix("uploads/u1/") == 0


def test_copy_duplicates_bytes_and_content_type(store: ObjectStore) -> None:
    data = payload(2048, seed=5)
    store.put("uploads/up1/file", data, content_type="application/octet-stream")

    info = store.copy("uploads/up1/file", "models/sha")

    assert info.key == "models/sha" and info.size == 2048
    assert store.read_bytes("models/sha") == data
    assert store.head("models/sha").content_type == "application/octet-stream"
    assert store.read_bytes("uploads/up1/file") == data
    with pytest.raises(ObjectNotFound):
        store.copy("uploads/missing", "models/other")


# 4. Keys


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../escape", "a/../../escape", "a/./b", "a//b", "a\\b", "a\x00b", "a\nb", "dir/"],
)
def test_unsafe_keys_are_refused_by_every_operation(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidObjectKey):
        store.put(key, b"x")
    with pytest.raises(InvalidObjectKey):
        store.head(key)
    with pytest.raises(InvalidObjectKey):
        store.open_range(key)
    with pytest.raises(InvalidObjectKey):
        store.delete(key)
    with pytest.raises(InvalidObjectKey):
        store.create_multipart(key)
    with pytest.raises(InvalidObjectKey):
        store.download_url(key, expires_in=60)


@pytest.mark.parametrize("prefix", ["/abs", "../up", "a/../b", "a\\b"])
def test_unsafe_prefixes_are_refused(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidObjectKey):
        list(store.list(prefix))
    with pytest.raises(InvalidObjectKey):
        store.delete_prefix(prefix)


def test_unicode_keys_round_trip(store: ObjectStore) -> None:
    store.put("datasets/ds/été 1.png", b"ok")

    assert store.read_bytes("datasets/ds/été 1.png") == b"ok"
    assert [i.key for i in store.list("datasets/")] == ["datasets/ds/été 1.png"]


# 5. Multipart uploads (S3's rules: every part but the last is at least 5 MiB)


def test_multipart_upload_assembles_parts_in_order(store: ObjectStore) -> None:
    first, second, last = payload(MIN_PART_SIZE, seed=1), payload(MIN_PART_SIZE, seed=2), b"tail"
    upload_id = store.create_multipart("models/big", content_type="application/x-safetensors")

    parts = [
        store.upload_part("models/big", upload_id, 1, first),
        store.upload_part("models/big", upload_id, 2, io.BytesIO(second)),
        store.upload_part("models/big", upload_id, 3, last),
    ]

    assert [(p.part_number, p.size) for p in parts] == [(1, MIN_PART_SIZE), (2, MIN_PART_SIZE), (3, 4)]
    assert store.list_parts("models/big", upload_id) == parts
    assert not store.exists("models/big")
    info = store.complete_multipart("models/big", upload_id, parts)
    assert info.size == 2 * MIN_PART_SIZE + 4
    assert info.content_type == "application/x-safetensors"
    assert store.read_bytes("models/big") == first + second + last
    with pytest.raises(UploadNotFound):
        store.list_parts("models/big", upload_id)


def test_uploading_a_part_again_replaces_it(store: ObjectStore) -> None:
    upload_id = store.create_multipart("uploads/u/file")
    store.upload_part("uploads/u/file", upload_id, 1, b"stale bytes")

    replacement = store.upload_part("uploads/u/file", upload_id, 1, b"fresh")

    assert store.list_parts("uploads/u/file", upload_id) == [replacement]
    store.complete_multipart("uploads/u/file", upload_id, [replacement])
    assert store.read_bytes("uploads/u/file") == b"fresh"


def test_complete_refuses_parts_s3_would_refuse(store: ObjectStore) -> None:
    key = "uploads/u/bad"
    upload_id = store.create_multipart(key)
    small = store.upload_part(key, upload_id, 1, b"too small to be followed")
    big = store.upload_part(key, upload_id, 2, payload(MIN_PART_SIZE))

    with pytest.raises(InvalidMultipart):
        store.complete_multipart(key, upload_id, [small, big])  # first part under 5 MiB
    with pytest.raises(InvalidMultipart):
        store.complete_multipart(key, upload_id, [big, small])  # out of order
    with pytest.raises(InvalidMultipart):
        store.complete_multipart(key, upload_id, [PartInfo(part_number=2, size=big.size, etag="0" * 32)])
    with pytest.raises(InvalidMultipart):
        store.complete_multipart(key, upload_id, [PartInfo(part_number=7, size=1, etag=small.etag)])
    assert not store.exists(key)
    # The upload survives refused completions.
    store.complete_multipart(key, upload_id, [big])
    assert store.head(key).size == MIN_PART_SIZE


def test_abort_discards_the_upload(store: ObjectStore) -> None:
    key = "uploads/u/aborted"
    upload_id = store.create_multipart(key)
    store.upload_part(key, upload_id, 1, b"data")

    store.abort_multipart(key, upload_id)

    with pytest.raises(UploadNotFound):
        store.list_parts(key, upload_id)
    if not isinstance(store, S3ObjectStore):  # moto answers 500 here, where S3 answers NoSuchUpload
        with pytest.raises(UploadNotFound):
            store.upload_part(key, upload_id, 2, b"late")
    assert not store.exists(key)
    store.abort_multipart(key, upload_id)  # twice is fine


def test_unknown_upload_ids_are_not_found(store: ObjectStore) -> None:
    upload_id = store.create_multipart("uploads/u/one")

    if not isinstance(store, S3ObjectStore):  # moto answers 500 here, where S3 answers NoSuchUpload
        with pytest.raises(UploadNotFound):
            store.upload_part("uploads/u/one", "0123456789abcdef0123456789abcdef", 1, b"x")
    with pytest.raises(UploadNotFound):
        store.list_parts("uploads/u/one", "0123456789abcdef0123456789abcdef")
    with pytest.raises(UploadNotFound):
        store.list_parts("uploads/u/one", "../../escape")
    if not isinstance(store, S3ObjectStore):  # moto does not tie upload ids to keys; S3 does
        with pytest.raises(UploadNotFound):
            store.list_parts("uploads/u/other-key", upload_id)
    with pytest.raises(ValueError):
        store.upload_part("uploads/u/one", upload_id, 0, b"x")
    with pytest.raises(ValueError):
        store.upload_part("uploads/u/one", upload_id, 10_001, b"x")


# 6. URLs and health


def test_download_url_is_an_http_url_naming_the_object(store: ObjectStore) -> None:
    store.put("outputs/j/0.png", b"png")

    url = store.download_url("outputs/j/0.png", expires_in=300, filename="cat.png")

    assert url.startswith(("http://", "https://"))
    assert "outputs/j/0.png" in url


def test_check_passes_on_a_usable_store(store: ObjectStore) -> None:
    store.check()


def test_purge_incomplete_aborts_only_old_uploads(store: ObjectStore) -> None:
    upload_id = store.create_multipart("uploads/u/stale")
    store.upload_part("uploads/u/stale", upload_id, 1, b"abandoned")

    if not isinstance(store, S3ObjectStore):  # moto reports every upload as initiated in 2010
        assert store.purge_incomplete(older_than=timedelta(hours=1)) == 0
        assert len(store.list_parts("uploads/u/stale", upload_id)) == 1
    time.sleep(0.05)
    assert store.purge_incomplete(older_than=timedelta(0)) == 1
    with pytest.raises(UploadNotFound):
        store.list_parts("uploads/u/stale", upload_id)
