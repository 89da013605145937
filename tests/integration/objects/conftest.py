"""One `store` fixture, run against every ObjectStore backend: memory, local directory, S3 on moto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.client import BaseClient

from sdfleet.objects.base import ObjectStore
from sdfleet.objects.local import LocalObjectStore
from sdfleet.objects.memory import MemoryObjectStore
from sdfleet.objects.s3 import S3ObjectStore, create_s3_client
from sdfleet.objects.signing import UrlSigner

SECRET = b"contract-suite-secret-key"
BASE_URL = "http://sdfleet.test"


@pytest.fixture(scope="session")
def s3_client(moto_s3_url: str) -> BaseClient:
    """The client the S3 stores under test use (built once: building one takes a few hundred ms)."""
    return create_s3_client(
        endpoint_url=moto_s3_url, region_name="us-east-1",
        access_key_id="testing", secret_access_key="testing",
    )


@pytest.fixture
def s3_store(s3_client: BaseClient, moto_s3_bucket: str) -> S3ObjectStore:
    """An S3ObjectStore on a fresh bucket, under a prefix so the prefix handling is exercised too."""
    return S3ObjectStore(client=s3_client, bucket=moto_s3_bucket, prefix="tenant/a")


@pytest.fixture(params=["memory", "local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """Each backend in turn, empty."""
    if request.param == "memory":
        yield MemoryObjectStore(secret_key=SECRET, public_base_url=BASE_URL)
    elif request.param == "local":
        signer = UrlSigner(secret_key=SECRET, public_base_url=BASE_URL)
        yield LocalObjectStore(root=tmp_path / "objects", signer=signer)
    else:
        yield request.getfixturevalue("s3_store")
