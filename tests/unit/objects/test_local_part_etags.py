"""Local multipart parts carry a per-write version tag: a replaced part's old etag no longer completes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sdfleet.objects.base import InvalidMultipart
from tests.unit.objects.test_local_object_store import make_store

KEY = "uploads/u1/file"


def test_rewriting_a_part_gives_a_new_etag_and_the_old_one_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    upload_id = store.create_multipart(KEY)
    first = store.upload_part(KEY, upload_id, 1, b"same bytes")
    second = store.upload_part(KEY, upload_id, 1, b"same bytes")
    assert len(first.etag) == 32 and int(first.etag, 16) >= 0
    assert first.etag != second.etag
    with pytest.raises(InvalidMultipart):
        store.complete_multipart(KEY, upload_id, [first])
    info = store.complete_multipart(KEY, upload_id, [second])
    assert store.read_bytes(KEY) == b"same bytes" and info.etag.endswith("-1")


def test_single_objects_keep_a_content_etag(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    a = store.put("a/one", b"payload")
    b = store.put("a/two", b"payload")
    assert a.etag == b.etag == hashlib.sha256(b"payload").hexdigest()[:32]
