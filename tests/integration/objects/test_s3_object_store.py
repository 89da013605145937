"""What only S3ObjectStore does: presigned URLs over HTTP, pagination, prefixes, server-side copy, health."""

from __future__ import annotations

import random
import socket
import time

import httpx
import pytest
from botocore.client import BaseClient

from sdfleet.objects.base import MIN_PART_SIZE, ObjectStoreUnavailable, PartInfo
from sdfleet.objects.factory import open_object_store
from sdfleet.objects.s3 import S3ObjectStore, create_s3_client

pytestmark = pytest.mark.s3


def test_presigned_download_url_serves_the_object_over_http(s3_store: S3ObjectStore) -> None:
    data = random.Random(1).randbytes(4096)
    s3_store.put("outputs/job/0.png", data, content_type="image/png")

    url = s3_store.download_url("outputs/job/0.png", expires_in=60, filename="chat été.png")
    response = httpx.get(url)

    assert response.status_code == 200
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "UTF-8''chat%20%C3%A9t%C3%A9.png" in disposition
    assert not s3_store.verify_download("outputs/job/0.png", expires=2**40, signature="0" * 64)


def test_presigned_part_urls_take_a_multipart_upload_over_http(s3_store: S3ObjectStore) -> None:
    key = "uploads/up-1/model.safetensors"
    pieces = [random.Random(2).randbytes(MIN_PART_SIZE), b"last part"]
    upload_id = s3_store.create_multipart(key)

    parts = []
    for number, piece in enumerate(pieces, start=1):
        url = s3_store.presign_part_url(key, upload_id, number, expires_in=300)
        assert url is not None
        response = httpx.put(url, content=piece)
        assert response.status_code == 200, response.text
        parts.append(PartInfo(part_number=number, size=len(piece), etag=response.headers["etag"].strip('"')))

    assert [p.part_number for p in s3_store.list_parts(key, upload_id)] == [1, 2]
    info = s3_store.complete_multipart(key, upload_id, parts)
    assert info.size == MIN_PART_SIZE + len(b"last part")
    assert s3_store.read_bytes(key) == b"".join(pieces)


def test_list_paginates_past_one_page(s3_client: BaseClient, moto_s3_bucket: str) -> None:
    store = S3ObjectStore(client=s3_client, bucket=moto_s3_bucket, list_page_size=2)
    keys = [f"outputs/job/{n}.png" for n in range(7)]
    for key in reversed(keys):
        store.put(key, b"x")

    assert [info.key for info in store.list("outputs/")] == keys
    assert store.delete_prefix("outputs/") == 7
    assert list(store.list()) == []


def test_prefix_isolates_stores_sharing_a_bucket(s3_client: BaseClient, moto_s3_bucket: str) -> None:
    one = S3ObjectStore(client=s3_client, bucket=moto_s3_bucket, prefix="one")
    other = S3ObjectStore(client=s3_client, bucket=moto_s3_bucket, prefix="one-more/")
    one.put("models/a", b"a")
    other.put("models/b", b"b")

    assert [i.key for i in one.list()] == ["models/a"]
    assert not one.exists("models/b")
    assert one.delete_prefix("") == 1
    assert [i.key for i in other.list()] == ["models/b"]
    raw = s3_client.list_objects_v2(Bucket=moto_s3_bucket)["Contents"]
    assert [item["Key"] for item in raw] == ["one-more/models/b"]


def test_copy_past_the_single_copy_limit_uses_part_copies(s3_client: BaseClient, moto_s3_bucket: str) -> None:
    store = S3ObjectStore(
        client=s3_client, bucket=moto_s3_bucket, part_size=MIN_PART_SIZE, multipart_copy_threshold=1024
    )
    data = random.Random(3).randbytes(2 * MIN_PART_SIZE + 100)
    store.put("uploads/u/file", data, content_type="application/x-safetensors")

    info = store.copy("uploads/u/file", "models/abc")

    assert info.etag is not None and info.etag.endswith("-3")
    assert info.content_type == "application/x-safetensors"
    assert store.read_bytes("models/abc") == data


def test_check_names_a_missing_bucket(s3_client: BaseClient) -> None:
    store = S3ObjectStore(client=s3_client, bucket="no-such-bucket-here")

    with pytest.raises(ObjectStoreUnavailable, match="'no-such-bucket-here' does not exist"):
        store.check()


def test_check_names_an_unreachable_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = create_s3_client(
        endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        access_key_id="testing", secret_access_key="testing",
    )
    store = S3ObjectStore(client=client, bucket="models")

    started = time.monotonic()
    with pytest.raises(ObjectStoreUnavailable, match=f"cannot reach S3 endpoint http://127.0.0.1:{port}"):
        store.check()
    assert time.monotonic() - started < 15


def test_factory_opens_an_s3_url_with_credentials_from_the_environment(
    moto_s3_url: str, moto_s3_bucket: str
) -> None:
    store = open_object_store(
        f"s3://{moto_s3_bucket}/sdfleet/prod",
        s3_endpoint_url=moto_s3_url,
        secret_key=b"factory-test-secret-key",
        public_base_url="http://localhost:8000",
    )
    store.check()
    store.put("models/x", b"payload")

    assert isinstance(store, S3ObjectStore)
    assert store.read_bytes("models/x") == b"payload"
    client = create_s3_client(endpoint_url=moto_s3_url, access_key_id="t", secret_access_key="t")
    assert client.get_object(Bucket=moto_s3_bucket, Key="sdfleet/prod/models/x")["Body"].read() == b"payload"
