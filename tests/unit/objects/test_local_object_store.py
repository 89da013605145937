"""LocalObjectStore specifics: it never writes outside its root, and writes are atomic."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sdfleet.objects.base import InvalidObjectKey, ObjectStoreUnavailable
from sdfleet.objects.local import LocalObjectStore
from sdfleet.objects.signing import UrlSigner

SECRET = b"local-store-test-secret"


def make_store(root: Path) -> LocalObjectStore:
    return LocalObjectStore(root=root, signer=UrlSigner(secret_key=SECRET, public_base_url="http://h"))


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "key", ["../outside", "a/../../outside", "/tmp/outside", "..\\outside", "a/../../../../etc/x", "..", "."]
)
def test_traversal_keys_write_nothing_outside_the_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "store" / "objects"
    store = make_store(root)
    store.put("models/ok", b"ok")
    before = files_under(tmp_path)

    with pytest.raises(InvalidObjectKey):
        store.put(key, b"escaped")
    with pytest.raises(InvalidObjectKey):
        store.copy("models/ok", key)
    with pytest.raises(InvalidObjectKey):
        store.delete(key)

    assert files_under(tmp_path) == before
    assert not (tmp_path / "outside").exists() and not (tmp_path / "store" / "outside").exists()


def test_a_symlink_inside_the_root_cannot_lead_out_of_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not serve")
    store = make_store(tmp_path / "objects")
    store.check()
    (tmp_path / "objects" / "link").symlink_to(outside, target_is_directory=True)

    with pytest.raises(InvalidObjectKey, match="outside the store root"):
        store.read_bytes("link/secret")
    with pytest.raises(InvalidObjectKey, match="outside the store root"):
        store.put("link/new", b"x")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_staging_area_is_hidden_from_keys_and_listing(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.put("models/a", b"a", content_type="application/octet-stream")
    upload_id = store.create_multipart("models/b")
    store.upload_part("models/b", upload_id, 1, b"part")

    assert [i.key for i in store.list()] == ["models/a"]
    assert [i.key for i in store.list(".s")] == []
    assert (tmp_path / ".sdfleet" / "multipart" / upload_id).is_dir()
    with pytest.raises(InvalidObjectKey, match="reserved"):
        store.read_bytes(".sdfleet/tmp/x")


def test_failed_put_keeps_the_previous_object_and_leaves_no_temp_file(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.put("models/a", b"original", content_type="text/plain")

    def broken_chunks():
        yield b"partial new content"
        raise OSError("client disconnected")

    class BrokenStream:
        def __init__(self) -> None:
            self._chunks = broken_chunks()

        def read(self, size: int = -1) -> bytes:
            return next(self._chunks)

    with pytest.raises(OSError, match="client disconnected"):
        store.put("models/a", BrokenStream())  # type: ignore[arg-type]

    assert store.read_bytes("models/a") == b"original"
    assert store.head("models/a").content_type == "text/plain"
    assert list((tmp_path / ".sdfleet" / "tmp").iterdir()) == []


def test_a_process_killed_mid_put_leaves_no_object_under_the_key(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from sdfleet.objects.local import LocalObjectStore
        from sdfleet.objects.signing import UrlSigner

        class DiesHalfway:
            sent = 0
            def read(self, size=-1):
                if self.sent >= 4 * 1024 * 1024:
                    os.kill(os.getpid(), signal.SIGKILL)
                self.sent += 1024 * 1024
                return b"x" * (1024 * 1024)

        store = LocalObjectStore(root={str(tmp_path)!r}, signer=UrlSigner(secret_key=b"0" * 16, public_base_url="http://h"))
        store.put("models/half", DiesHalfway())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)

    assert result.returncode == -9, result.stderr.decode()
    store = make_store(tmp_path)
    assert not store.exists("models/half")
    assert list(store.list()) == []
    leftovers = list((tmp_path / ".sdfleet" / "tmp").iterdir())
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == 4 * 1024 * 1024
    assert store.purge_incomplete(older_than=timedelta(hours=1)) == 0
    os.utime(leftovers[0], (time.time() - 7200, time.time() - 7200))
    assert store.purge_incomplete(older_than=timedelta(hours=1)) == 1
    assert list((tmp_path / ".sdfleet" / "tmp").iterdir()) == []


def test_metadata_of_a_file_replaced_by_hand_is_ignored(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.put("models/a", b"original", content_type="text/plain")

    (tmp_path / "models" / "a").write_bytes(b"replaced out of band")

    info = store.head("models/a")
    assert (info.size, info.content_type, info.etag) == (len(b"replaced out of band"), None, None)


def test_delete_prunes_folders_left_empty(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.put("outputs/job/0.png", b"0")
    store.put("outputs/other/0.png", b"0")

    store.delete("outputs/job/0.png")

    assert not (tmp_path / "outputs" / "job").exists()
    assert (tmp_path / "outputs" / "other").is_dir()
    assert store.delete_prefix("outputs/") == 1
    assert not (tmp_path / "outputs").exists()


def test_a_key_that_runs_through_an_object_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.put("outputs/job", b"a file")
    store.put("models/dir/x", b"x")

    with pytest.raises(InvalidObjectKey, match="runs through an existing object"):
        store.put("outputs/job/0.png", b"x")
    with pytest.raises(InvalidObjectKey, match="folder of other objects"):
        store.put("models/dir", b"x")
    assert store.read_bytes("outputs/job") == b"a file"


def test_complete_and_abort_clean_the_staging_folder(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    done = store.create_multipart("models/done")
    part = store.upload_part("models/done", done, 1, b"abc")
    dropped = store.create_multipart("models/dropped")
    store.upload_part("models/dropped", dropped, 1, b"abc")

    store.complete_multipart("models/done", done, [part])
    store.abort_multipart("models/dropped", dropped)

    assert list((tmp_path / ".sdfleet" / "multipart").iterdir()) == []
    assert list((tmp_path / ".sdfleet" / "tmp").iterdir()) == []


def test_download_url_round_trips_through_verify_download(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.put("outputs/j/0.png", b"png")

    url = store.download_url("outputs/j/0.png", expires_in=60, filename="cat.png")

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/api/v1/objects/outputs/j/0.png"
    assert store.verify_download(
        "outputs/j/0.png", expires=int(query["expires"]), signature=query["signature"], filename="cat.png"
    )
    assert not store.verify_download(
        "outputs/j/1.png", expires=int(query["expires"]), signature=query["signature"], filename="cat.png"
    )


def test_check_creates_the_root_and_reports_an_unusable_one(tmp_path: Path) -> None:
    make_store(tmp_path / "new" / "objects").check()
    assert (tmp_path / "new" / "objects").is_dir()
    (tmp_path / "a-file").write_bytes(b"")

    with pytest.raises(ObjectStoreUnavailable, match="a-file"):
        make_store(tmp_path / "a-file").check()
    with pytest.raises(ObjectStoreUnavailable, match="not writable"):
        make_store(tmp_path / "a-file" / "below").check()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_check_reports_a_read_only_root(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(ObjectStoreUnavailable, match="not writable"):
            make_store(root).check()
    finally:
        root.chmod(0o700)
